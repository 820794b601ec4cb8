/**
 * `postgres` store settings (untrusted configuration, validated with zod) and their mapping to a
 * `pg` pool configuration. The password never sits in the settings themselves: it comes from a file
 * (a mounted Kubernetes secret) or from a named environment variable.
 *
 * ```json
 * { "connectionString": "postgres://kbs@db.internal:5432/kbs?sslmode=require",
 *   "passwordFile": "/run/secrets/kbs-db-password", "poolSize": 10 }
 * { "host": "127.0.0.1", "port": 5432, "user": "kbs", "database": "kbs", "passwordEnv": "KBS_DB_PASSWORD" }
 * ```
 */
import { readFile } from 'node:fs/promises'
import type { PoolConfig } from 'pg'
import { z } from 'zod'
import { CofferError } from '../../../lib/util/errors.js'

const MAX_PASSWORD_FILE_BYTES = 4096
const CONNECT_TIMEOUT_MS = 10_000
const QUERY_TIMEOUT_MS = 30_000
const IDLE_TIMEOUT_MS = 30_000

export const PostgresStoreSettings = z
  .strictObject({
    connectionString: z
      .string()
      .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// URL')
      .optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().min(1).optional(),
    database: z.string().min(1).optional(),
    passwordFile: z.string().min(1).optional(),
    passwordEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
      .optional(),
    poolSize: z.number().int().min(1).max(100).default(10),
    connectTimeoutMs: z.number().int().min(100).max(300_000).default(CONNECT_TIMEOUT_MS),
    queryTimeoutMs: z.number().int().min(100).max(600_000).default(QUERY_TIMEOUT_MS),
  })
  .refine((s) => s.connectionString !== undefined || s.host !== undefined, {
    message: 'needs connectionString or host',
  })
  .refine((s) => !(s.passwordFile && s.passwordEnv), {
    message: 'passwordFile and passwordEnv exclude each other',
  })
export type PostgresStoreSettings = z.infer<typeof PostgresStoreSettings>
/** Settings as written (defaults not yet applied). */
export type PostgresStoreSettingsInput = z.input<typeof PostgresStoreSettings>

/** The pool configuration for validated settings; reads the password file or variable. */
export async function poolConfigFor(
  s: PostgresStoreSettings,
  env: NodeJS.ProcessEnv = process.env,
): Promise<PoolConfig> {
  const config: PoolConfig = {
    max: s.poolSize,
    connectionTimeoutMillis: s.connectTimeoutMs,
    idleTimeoutMillis: IDLE_TIMEOUT_MS,
    query_timeout: s.queryTimeoutMs,
    statement_timeout: s.queryTimeoutMs,
    application_name: 'coffer-kbs',
  }
  if (s.host) config.host = s.host
  if (s.port) config.port = s.port
  if (s.user) config.user = s.user
  if (s.database) config.database = s.database
  const password = await passwordFor(s, env)
  if (password !== undefined) config.password = password
  if (s.connectionString) config.connectionString = withPassword(s.connectionString, password)
  return config
}

/**
 * pg lets every field parsed from `connectionString` override the separate fields, a missing
 * password included (it becomes undefined), so a password from a file must go into the URL.
 * `encodeURIComponent` round-trips through pg-connection-string for any password (tested).
 */
function withPassword(connectionString: string, password: string | undefined): string {
  if (password === undefined) return connectionString
  let url: URL
  try {
    url = new URL(connectionString)
  } catch {
    throw new CofferError('ERR_CONFIG_INVALID', 'kbs store "postgres": connectionString is not a valid URL')
  }
  url.password = encodeURIComponent(password)
  return url.href
}

async function passwordFor(s: PostgresStoreSettings, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (s.passwordEnv) {
    const v = env[s.passwordEnv]
    if (v === undefined) {
      throw new CofferError(
        'ERR_CONFIG_INVALID',
        `kbs store "postgres": environment variable ${s.passwordEnv} is not set`,
      )
    }
    return v
  }
  if (!s.passwordFile) return undefined
  let bytes: Buffer
  try {
    bytes = await readFile(s.passwordFile)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new CofferError(
      'ERR_CONFIG_INVALID',
      `kbs store "postgres": cannot read passwordFile ${s.passwordFile}: ${code}`,
      {
        cause: err,
      },
    )
  }
  if (bytes.length > MAX_PASSWORD_FILE_BYTES) {
    throw new CofferError(
      'ERR_CONFIG_INVALID',
      `kbs store "postgres": passwordFile ${s.passwordFile} is too large`,
    )
  }
  // A secret file usually ends with one newline that is not part of the password.
  return bytes.toString('utf8').replace(/\r?\n$/, '')
}
