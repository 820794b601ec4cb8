import { createHash } from 'node:crypto'
import canonicalize from 'canonicalize'
import { CofferError } from '../util/errors.js'

export type ReportDataHash = 'sha256' | 'sha384' | 'sha512'

/**
 * The runtime data a guest binds into its evidence (trustee `runtime_data_claims`): the
 * challenge nonce, the session's tee-pubkey JWK and the device evidence string (`""` when
 * none; the key is always present). Both sides hash its RFC 8785 (JCS) serialization.
 */
export interface RuntimeData {
  readonly nonce: string
  readonly 'tee-pubkey': Readonly<Record<string, unknown>>
  readonly 'additional-evidence': string
}

/** JCS serialization of a JSON value (sorted keys, no whitespace). */
export function jcs(value: unknown): string {
  const out = canonicalize(value)
  if (out === undefined) throw new CofferError('ERR_INTERNAL', 'value cannot be canonicalized')
  return out
}

/** hash(JCS(runtime data)); sha384 unless the challenge selected another algorithm. */
export function runtimeDataDigest(data: RuntimeData, hash: ReportDataHash = 'sha384'): Uint8Array {
  return createHash(hash).update(jcs(data)).digest()
}

/**
 * Fits a digest to a report-data field of `size` bytes as trustee's `regularize_data` does:
 * zero-padded on the right when shorter, truncated when longer.
 */
export function fitReportData(digest: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size)
  out.set(digest.subarray(0, size))
  return out
}
