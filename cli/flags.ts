import { CofferError } from '../lib/util/errors.js'
import { loadRegistriesConf } from '../lib/oci/registry/registries-conf.js'
import type { RegistryAccess } from '../lib/oci/registry/access.js'
import { DEFAULT_RETRY } from '../lib/oci/registry/retry.js'
import type { CopyEvent } from '../lib/oci/copy-events.js'

/** A positive integer flag, or a usage error naming the flag. */
export function intFlag(value: unknown, flag: string, min = 1, max = 1_000): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new CofferError(
      'ERR_USAGE',
      `${flag} must be a whole number from ${min} to ${max}, not "${String(value)}"`,
    )
  }
  return n
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
}

/** `16MiB`, `512k`, `1048576` → bytes. */
export function sizeFlag(value: unknown, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(String(value).trim())
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined)
    throw new CofferError('ERR_USAGE', `${flag} must be a size like 16MiB or 1048576, not "${String(value)}"`)
  return Math.round(Number(m[1]) * unit)
}

/**
 * Registry access for one side of a command, from skopeo-style flags: `--{prefix}creds`,
 * `--{prefix}authfile` (falling back to `--authfile`, then $REGISTRY_AUTH_FILE), `--{prefix}tls-verify`.
 */
export async function registryAccess(
  opts: Record<string, unknown>,
  prefix: '' | 'src' | 'dest',
  onEvent?: (e: CopyEvent) => void,
): Promise<RegistryAccess> {
  const key = (name: string): string => (prefix ? `${prefix}${name[0]!.toUpperCase()}${name.slice(1)}` : name)
  const authfile = (opts[key('authfile')] ?? opts.authfile ?? process.env.REGISTRY_AUTH_FILE) as
    string | undefined
  const creds = opts[key('creds')] as string | undefined
  const tlsVerify = opts[key('tlsVerify')] as boolean | undefined
  const attempts = intFlag(opts.retryTimes ?? DEFAULT_RETRY.attempts, '--retry-times', 1, 20)
  const registriesConf = await loadRegistriesConf(
    opts.registriesConf ? { path: opts.registriesConf as string } : {},
  )
  return {
    ...(creds !== undefined ? { creds } : {}),
    ...(authfile ? { authfile } : {}),
    ...(tlsVerify !== undefined ? { tlsVerify } : {}),
    registriesConf,
    retry: { ...DEFAULT_RETRY, attempts },
    userAgent: 'coffer',
    ...(onEvent ? { onRetry: (r) => onEvent({ type: 'retry', ...r }) } : {}),
  }
}
