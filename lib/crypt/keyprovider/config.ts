/**
 * The keyprovider configuration (spec §2.1; ocicrypt `config/keyprovider-config/config.go`): read
 * only from the file named by `OCICRYPT_KEYPROVIDER_CONFIG`. As in ocicrypt, an unset variable or
 * a missing file means no providers; a file that exists but does not parse is ERR_CONFIG_INVALID.
 *
 * ```json
 * {"key-providers": {
 *   "kms":   {"cmd": {"path": "/usr/local/bin/kms-provider", "args": ["--profile", "prod"]}},
 *   "coffer": {"grpc": "127.0.0.1:50000"}
 * }}
 * ```
 * `cmd` wins over `grpc` when both are given. `grpc-tls`, `ttrpc` and `native` are recognised but
 * not supported yet; such a provider is kept, and fails with ERR_CRYPT_UNSUPPORTED when used.
 */
import { z } from 'zod'
import { CofferError } from '../../util/errors.js'
import { readOptionalFileLimited } from '../../util/io.js'
import { MAX_PROVIDER_CONFIG_BYTES } from './limits.js'

export const KEYPROVIDER_CONFIG_ENV = 'OCICRYPT_KEYPROVIDER_CONFIG'

/**
 * Provider names become part of `provider:<name>[:params]` (split at the first `:`), of an
 * annotation key, and of a comma-separated list; keep them to a safe alphabet.
 */
const PROVIDER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

const providerEntrySchema = z.looseObject({
  cmd: z
    .looseObject({
      path: z.string().min(1),
      args: z.array(z.string()).nullable().optional(),
    })
    .nullable()
    .optional(),
  grpc: z.string().nullable().optional(),
  'grpc-tls': z.unknown().optional(),
  ttrpc: z.string().nullable().optional(),
  native: z.string().nullable().optional(),
})

const configSchema = z.looseObject({
  'key-providers': z.record(z.string(), providerEntrySchema).nullable().optional(),
})

/** How to reach one provider. */
export type KeyProviderTransportConfig =
  | { kind: 'cmd'; path: string; args: string[] }
  | { kind: 'grpc'; address: string }
  /** Configured with something coffer cannot speak yet (`grpc-tls`, `ttrpc`, `native`, nothing). */
  | { kind: 'unsupported'; reason: string }

export interface KeyProviderEntry {
  name: string
  transport: KeyProviderTransportConfig
}

export interface KeyProviderConfig {
  /** In the file's order. */
  providers: KeyProviderEntry[]
}

/** Parses the config file's bytes; `source` names it in errors. */
export function parseKeyProviderConfig(bytes: Uint8Array, source: string): KeyProviderConfig {
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    throw new CofferError('ERR_CONFIG_INVALID', `${source} is not JSON`)
  }
  const parsed = configSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new CofferError(
      'ERR_CONFIG_INVALID',
      `${source}: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
    )
  }
  const providers: KeyProviderEntry[] = []
  for (const [name, entry] of Object.entries(parsed.data['key-providers'] ?? {})) {
    if (!PROVIDER_NAME.test(name))
      throw new CofferError(
        'ERR_CONFIG_INVALID',
        `${source}: key provider name "${name}" must be letters, digits, ".", "_" or "-"`,
      )
    providers.push({ name, transport: transportOf(entry) })
  }
  return { providers }
}

function transportOf(entry: z.infer<typeof providerEntrySchema>): KeyProviderTransportConfig {
  if (entry.cmd) return { kind: 'cmd', path: entry.cmd.path, args: entry.cmd.args ?? [] }
  if (entry.grpc) {
    if (entry['grpc-tls'] !== undefined && entry['grpc-tls'] !== null)
      return { kind: 'unsupported', reason: 'grpc-tls is not supported yet' }
    return { kind: 'grpc', address: entry.grpc }
  }
  if (entry.ttrpc) return { kind: 'unsupported', reason: 'ttrpc providers are not supported' }
  if (entry.native) return { kind: 'unsupported', reason: 'native providers are not supported' }
  return { kind: 'unsupported', reason: 'neither cmd nor grpc is configured' }
}

/** Reads the config named by `OCICRYPT_KEYPROVIDER_CONFIG` in `env`; none is `{providers: []}`. */
export async function loadKeyProviderConfig(
  env: NodeJS.ProcessEnv = process.env,
): Promise<KeyProviderConfig> {
  const path = env[KEYPROVIDER_CONFIG_ENV]
  if (!path) return { providers: [] }
  const bytes = await readOptionalFileLimited(
    path,
    MAX_PROVIDER_CONFIG_BYTES,
    `${KEYPROVIDER_CONFIG_ENV} file ${path}`,
    'ERR_CONFIG_INVALID',
  )
  if (!bytes) return { providers: [] }
  return parseKeyProviderConfig(bytes, `${KEYPROVIDER_CONFIG_ENV} file ${path}`)
}
