/**
 * Signatures as the evaluator sees them, whatever stored them (c/image `signature/internal`
 * `Signature`): a simple-signing blob from a lookaside store, or a sigstore attachment (one layer
 * of a cosign `.sig` manifest).
 */
import type { Io } from '../util/io.js'

export const SIGSTORE_PAYLOAD_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json'
export const SIGSTORE_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature'
export const SIGSTORE_CERTIFICATE_ANNOTATION = 'dev.sigstore.cosign/certificate'
export const SIGSTORE_CHAIN_ANNOTATION = 'dev.sigstore.cosign/chain'
export const SIGSTORE_BUNDLE_ANNOTATION = 'dev.sigstore.cosign/bundle'

export type Signature =
  | { readonly kind: 'simple-signing'; readonly blob: Uint8Array }
  | {
      readonly kind: 'sigstore'
      /** The layer's media type; only SIGSTORE_PAYLOAD_MEDIA_TYPE can be accepted. */
      readonly mimeType: string
      readonly payload: Uint8Array
      readonly annotations: Readonly<Record<string, string>>
    }

/**
 * Where an image's signatures come from. Called at most once per evaluation, and only when a
 * requirement needs signatures (a `reject` or `insecureAcceptAnything` policy fetches nothing).
 * Implementations return what they found, unverified, and fail only when storage cannot be read
 * (a missing signature store is "no signatures").
 */
export interface SignatureSource {
  signatures(o?: Io): Promise<Signature[]>
}

/** A fixed list (tests, or signatures fetched by the caller). */
export function staticSignatures(list: readonly Signature[]): SignatureSource {
  return { signatures: async () => [...list] }
}
