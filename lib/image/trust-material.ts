/**
 * Where the guest's trust material comes from: the signature policy, the keys it names, registry
 * credentials. Each is a local file or a KBS resource; KBS resources are fetched only after
 * attestation (through one KbsClient, so one handshake serves them all) and never written to disk.
 */
import { parseResourceUri } from '../kbs/resource-uri.js'
import type { KbsClient } from '../kbs/client.js'
import { fileKeyResolver, type KeyResolver } from '../sign/key-resolver.js'
import { MAX_POLICY_BYTES } from '../sign/limits.js'
import { loadPolicy, parsePolicy, type Policy } from '../sign/policy.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { isKbsLocation } from './config.js'

export interface TrustMaterial {
  /** The containers-policy.json to evaluate before any layer is fetched. */
  policy(o?: Io): Promise<Policy>
  /** Resolves policy `keyPath`s: files, or `kbs:///…` through the KBS. */
  readonly resolveKey: KeyResolver
}

export function trustMaterial(policyLocation: string, kbs: KbsClient | undefined): TrustMaterial {
  const fromKbs = async (uri: string, o: Io = {}): Promise<Uint8Array> => {
    if (!kbs)
      throw new CofferError('ERR_CONFIG_INVALID', `${uri} is a KBS resource, but no KBS is configured`)
    return kbs.getResource(parseResourceUri(uri), o)
  }
  return {
    async policy(o: Io = {}): Promise<Policy> {
      if (!isKbsLocation(policyLocation)) return loadPolicy(policyLocation)
      const bytes = await fromKbs(policyLocation, o)
      if (bytes.length > MAX_POLICY_BYTES)
        throw new CofferError('ERR_SIGN_POLICY_INVALID', `the policy at ${policyLocation} is too large`)
      return parsePolicy(bytes, policyLocation)
    },
    resolveKey: async (path, o) => (isKbsLocation(path) ? fromKbs(path, o) : fileKeyResolver(path, o)),
  }
}
