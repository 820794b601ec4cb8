/**
 * The JSON both signature formats sign: containers "simple signing" (`atomic container signature`,
 * c/image `docs/containers-signature.5.md`, `signature/simple.go`) and cosign's legacy payload
 * (`cosign container image signature`, sigstore `pkg/signature/payload`, c/image
 * `signature/internal/sigstore_payload.go`).
 *
 * Both claim "this manifest digest is the image known as this docker reference". Parsing follows
 * c/image's paranoid rules: the top level has exactly `critical` and `optional`; `critical` has
 * exactly `type`, `image`, `identity`; `image` exactly `docker-manifest-digest`; `identity` exactly
 * `docker-reference`. Unknown `optional` members are ignored, as the spec allows.
 * Only parse a payload after its signature verified.
 */
import { CofferError } from '../util/errors.js'
import { findDuplicateKey } from './strict-json.js'

export const SIMPLE_SIGNING_TYPE = 'atomic container signature'
export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature'
export type PayloadType = typeof SIMPLE_SIGNING_TYPE | typeof COSIGN_SIGNATURE_TYPE

/** What a verified payload claims. */
export interface SignedClaims {
  readonly type: PayloadType
  /** `critical.identity.docker-reference`, exactly as signed (not normalised). */
  readonly dockerReference: string
  /** `critical.image.docker-manifest-digest`, unvalidated beyond being a string. */
  readonly manifestDigest: string
  readonly creator?: string
  readonly timestamp?: number
}

/**
 * Payload bytes for a new signature. Key order follows what skopeo / cosign emit (Go marshals
 * struct fields in declaration order); consumers must not depend on it, but byte-identical output
 * makes comparisons in tests easy.
 */
export function buildPayload(
  type: PayloadType,
  dockerReference: string,
  manifestDigest: string,
  optional?: { creator?: string; timestamp?: number },
): Buffer {
  const doc = {
    critical: {
      identity: { 'docker-reference': dockerReference },
      image: { 'docker-manifest-digest': manifestDigest },
      type,
    },
    optional: optional && Object.keys(optional).length > 0 ? optional : null,
  }
  return Buffer.from(JSON.stringify(doc), 'utf8')
}

/** Parses a verified payload of the expected type. Throws ERR_SIGN_SIGNATURE_INVALID. */
export function parsePayload(bytes: Uint8Array, expectedType: PayloadType): SignedClaims {
  const text = Buffer.from(bytes).toString('utf8')
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw invalid('the signed payload is not JSON')
  }
  const duplicate = findDuplicateKey(text)
  if (duplicate !== undefined) throw invalid(`duplicate key "${clip(duplicate)}"`)
  const top = exactObject(doc, ['critical', 'optional'], 'the payload')
  const critical = exactObject(top.critical, ['type', 'image', 'identity'], 'critical')
  if (critical.type !== expectedType)
    throw invalid(`the payload type is ${JSON.stringify(critical.type)}, expected "${expectedType}"`)
  const image = exactObject(critical.image, ['docker-manifest-digest'], 'critical.image')
  const identity = exactObject(critical.identity, ['docker-reference'], 'critical.identity')
  const manifestDigest = image['docker-manifest-digest']
  const dockerReference = identity['docker-reference']
  if (typeof manifestDigest !== 'string') throw invalid('docker-manifest-digest is not a string')
  if (typeof dockerReference !== 'string') throw invalid('docker-reference is not a string')

  const claims: { -readonly [K in keyof SignedClaims]: SignedClaims[K] } = {
    type: expectedType,
    dockerReference,
    manifestDigest,
  }
  // `optional` may be null (cosign writes that) or an object; its unknown members are ignored.
  if (top.optional !== null) {
    if (typeof top.optional !== 'object' || Array.isArray(top.optional))
      throw invalid('optional is not an object')
    const optional = top.optional as Record<string, unknown>
    if ('creator' in optional) {
      if (typeof optional.creator !== 'string') throw invalid('optional.creator is not a string')
      claims.creator = optional.creator
    }
    if ('timestamp' in optional) {
      if (typeof optional.timestamp !== 'number' || !Number.isSafeInteger(optional.timestamp))
        throw invalid('optional.timestamp is not an integer')
      claims.timestamp = optional.timestamp
    }
  }
  return claims
}

function exactObject(value: unknown, keys: readonly string[], what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(`${what} is not a JSON object`)
  const record = value as Record<string, unknown>
  const present = Object.keys(record)
  const unknown = present.find((k) => !keys.includes(k))
  if (unknown !== undefined) throw invalid(`${what} has an unknown member "${clip(unknown)}"`)
  const missing = keys.find((k) => !present.includes(k))
  if (missing !== undefined) throw invalid(`${what} lacks "${missing}"`)
  return record
}

function invalid(why: string): CofferError {
  return new CofferError('ERR_SIGN_SIGNATURE_INVALID', `invalid signature payload: ${why}`)
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 37)}...` : s
}
