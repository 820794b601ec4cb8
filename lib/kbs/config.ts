/**
 * `coffer kbs serve` configuration: a TOML file (trustee's KBS is configured in TOML too), every
 * field optional with a safe embedded default. Relative paths are resolved against the file's
 * directory.
 */
import { homedir } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { z } from 'zod'
import { CofferError } from '../util/errors.js'
import { readTomlFile } from '../util/toml-file.js'
import { MiB } from '../util/limits.js'

const settings = z.record(z.string(), z.unknown()).default({})

export const KbsConfigSchema = z.strictObject({
  /** Where the fs store and the generated token key live. */
  data_dir: z.string().optional(),
  http: z
    .strictObject({
      address: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
      tls_cert: z.string().optional(),
      tls_key: z.string().optional(),
      /** Plain HTTP on a non-loopback address must be asked for explicitly. */
      insecure_http: z.boolean().default(false),
      body_limit: z
        .number()
        .int()
        .min(1024)
        .max(64 * MiB)
        .default(2 * MiB),
    })
    .prefault({}),
  store: z
    .strictObject({
      type: z.string().default('fs'),
      settings,
    })
    .prefault({}),
  attestation: z
    .strictObject({
      session_timeout_s: z.number().int().min(5).max(3600).default(300),
      token_lifetime_s: z
        .number()
        .int()
        .min(10)
        .max(24 * 3600)
        .default(300),
      /**
       * ES256 private key (PEM) signing tokens; replicas must share it. Absent: a fresh key in
       * memory per process, so tokens do not outlive a restart.
       */
      token_key: z.string().optional(),
      /** The sample verifier proves nothing: it is off unless this is true. */
      allow_sample: z.boolean().default(false),
      /** TEEs to enable (default: every built-in verifier except sample). */
      verifiers: z.array(z.string()).optional(),
      verifier_settings: z.record(z.string(), settings).default({}),
    })
    .prefault({}),
  admin: z
    .strictObject({
      /** PEM public keys (Ed25519 or P-256) whose JWTs may call the admin API. None: admin API off. */
      public_keys: z.array(z.string()).default([]),
    })
    .prefault({}),
  policy: z
    .strictObject({
      /** A resource policy installed at start if the store holds none. */
      file: z.string().optional(),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
})
export type KbsConfig = z.infer<typeof KbsConfigSchema> & { data_dir: string }

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_DATA_HOME || join(homedir(), '.local', 'share')
  return join(base, 'coffer', 'kbs')
}

/** Parses a config document (already read) and resolves its relative paths against `baseDir`. */
export function parseKbsConfig(
  doc: unknown,
  baseDir: string,
  env: NodeJS.ProcessEnv = process.env,
): KbsConfig {
  const r = KbsConfigSchema.safeParse(doc ?? {})
  if (!r.success) {
    const issue = r.error.issues[0]!
    throw new CofferError(
      'ERR_KBS_CONFIG_INVALID',
      `invalid KBS config at ${issue.path.join('.') || '(root)'}: ${issue.message}`,
    )
  }
  const c = r.data
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p))
  const dataDir = c.data_dir ? abs(c.data_dir) : defaultDataDir(env)
  return {
    ...c,
    data_dir: dataDir,
    http: {
      ...c.http,
      ...(c.http.tls_cert ? { tls_cert: abs(c.http.tls_cert) } : {}),
      ...(c.http.tls_key ? { tls_key: abs(c.http.tls_key) } : {}),
    },
    attestation: {
      ...c.attestation,
      ...(c.attestation.token_key ? { token_key: abs(c.attestation.token_key) } : {}),
    },
    admin: { public_keys: c.admin.public_keys.map(abs) },
    policy: c.policy.file ? { file: abs(c.policy.file) } : {},
  }
}

export async function loadKbsConfig(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<KbsConfig> {
  if (!path) return parseKbsConfig({}, process.cwd(), env)
  const doc = await readTomlFile(path, 'KBS config', 'ERR_KBS_CONFIG_INVALID')
  return parseKbsConfig(doc, dirname(resolve(path)), env)
}
