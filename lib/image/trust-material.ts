/**
 * Where the guest's trust material comes from: the signature policy, the keys it names, registries.d,
 * registry credentials (auth.json) and registries.conf. Each is a local file or a KBS resource; KBS
 * resources are fetched only after attestation (through one KbsClient, so one handshake serves them
 * all) and never written to disk: callers get the bytes and keep them in memory.
 */
import { parseResourceUri } from '../kbs/resource-uri.js'
import type { KbsClient } from '../kbs/client.js'
import { fileKeyResolver, type KeyResolver } from '../sign/key-resolver.js'
import { MAX_KEY_FILE_BYTES, MAX_POLICY_BYTES, MAX_REGISTRIES_D_FILE_BYTES } from '../sign/limits.js'
import { parsePolicy, type Policy } from '../sign/policy.js'
import { CofferError, type CofferErrorCode } from '../util/errors.js'
import { readOptionalFileLimited, type Io } from '../util/io.js'
import { MAX_CREDENTIALS_FILE_BYTES, MAX_REGISTRIES_CONF_BYTES } from '../util/limits.js'
import { isKbsLocation } from './config.js'

/** One kind of document a location may hold: its name in messages, its size limit, its error code. */
export interface LocationKind {
  readonly what: string
  readonly maxBytes: number
  readonly code: CofferErrorCode
}

export const POLICY_LOCATION: LocationKind = {
  what: 'signature policy',
  maxBytes: MAX_POLICY_BYTES,
  code: 'ERR_SIGN_POLICY_INVALID',
}
const KEY_LOCATION: LocationKind = { what: 'key', maxBytes: MAX_KEY_FILE_BYTES, code: 'ERR_SIGN_KEY_INVALID' }
export const REGISTRIES_D_LOCATION: LocationKind = {
  what: 'registries.d document',
  maxBytes: MAX_REGISTRIES_D_FILE_BYTES,
  code: 'ERR_SIGN_REGISTRIES_D_INVALID',
}
export const AUTH_LOCATION: LocationKind = {
  what: 'auth file',
  maxBytes: MAX_CREDENTIALS_FILE_BYTES,
  code: 'ERR_AUTH_FILE_INVALID',
}
export const REGISTRIES_CONF_LOCATION: LocationKind = {
  what: 'registries configuration',
  maxBytes: MAX_REGISTRIES_CONF_BYTES,
  code: 'ERR_REGISTRIES_CONF_INVALID',
}

/** Reads a local file or a `kbs:///…` resource whole, within `kind`'s size limit. */
export type LocationReader = (location: string, kind: LocationKind, o?: Io) => Promise<Uint8Array>

/**
 * The one reader of guest trust material. A missing local file is `kind.code` (a configured location
 * must exist); a KBS location without a KBS is ERR_CONFIG_INVALID. Neither message carries content.
 */
export function locationReader(kbs: KbsClient | undefined): LocationReader {
  return async (location, kind, o = {}) => {
    if (!isKbsLocation(location)) {
      const bytes = await readOptionalFileLimited(
        location,
        kind.maxBytes,
        `${kind.what} ${location}`,
        kind.code,
      )
      if (!bytes) throw new CofferError(kind.code, `${kind.what} ${location} does not exist`)
      return bytes
    }
    if (!kbs)
      throw new CofferError('ERR_CONFIG_INVALID', `${location} is a KBS resource, but no KBS is configured`)
    const bytes = await kbs.getResource(parseResourceUri(location), o)
    if (bytes.length > kind.maxBytes)
      throw new CofferError(
        kind.code,
        `the ${kind.what} at ${location} is larger than the ${kind.maxBytes}-byte limit`,
      )
    return bytes
  }
}

export interface TrustMaterial {
  /** The containers-policy.json to evaluate before any layer is fetched. */
  policy(o?: Io): Promise<Policy>
  /** Resolves policy `keyPath`s: files, or `kbs:///…` through the KBS. */
  readonly resolveKey: KeyResolver
}

export function trustMaterial(policyLocation: string, kbs: KbsClient | undefined): TrustMaterial {
  const read = locationReader(kbs)
  return {
    async policy(o: Io = {}): Promise<Policy> {
      return parsePolicy(await read(policyLocation, POLICY_LOCATION, o), policyLocation)
    },
    resolveKey: async (path, o) =>
      isKbsLocation(path) ? read(path, KEY_LOCATION, o) : fileKeyResolver(path, o),
  }
}
