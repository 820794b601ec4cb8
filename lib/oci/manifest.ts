import { CofferError } from '../util/errors.js'
import { MAX_MANIFEST_BYTES } from '../util/limits.js'
import { digestOf, verifyBytes, type Digest } from './digest.js'
import { isIndexMediaType, isManifestMediaType, isSchema1MediaType, MediaType } from './media-types.js'
import { describeIssues, indexSchema, manifestSchema, type Index, type Manifest } from './schemas.js'

/** A manifest or index exactly as stored: the bytes are what digests and signatures cover. */
export type ManifestDocument =
  | {
      readonly kind: 'manifest'
      readonly mediaType: string
      readonly bytes: Buffer
      readonly digest: Digest
      readonly manifest: Manifest
    }
  | {
      readonly kind: 'index'
      readonly mediaType: string
      readonly bytes: Buffer
      readonly digest: Digest
      readonly index: Index
    }

/**
 * Parses manifest bytes from an untrusted source.
 *
 * The media type comes from the body's `mediaType`; when the body has none (OCI allows that), from
 * `declaredType` (a descriptor or Content-Type), else from the document's shape, as containers/image
 * `manifest.GuessMIMEType` does. A body whose `mediaType` contradicts `declaredType` is refused: the
 * descriptor or header is what a signature or an index vouched for.
 * When `expectedDigest` is given (pulled by digest, or through a descriptor), the bytes are checked first.
 */
export function parseManifestDocument(
  bytes: Buffer,
  o: { declaredType?: string; expectedDigest?: Digest; source?: string } = {},
): ManifestDocument {
  const where = o.source ?? 'manifest'
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new CofferError(
      'ERR_OCI_MANIFEST_TOO_LARGE',
      `${where} is ${bytes.length} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`,
    )
  }
  if (o.expectedDigest) verifyBytes(bytes, o.expectedDigest, where)

  let json: unknown
  try {
    json = JSON.parse(bytes.toString('utf8'))
  } catch (cause) {
    throw new CofferError('ERR_OCI_MANIFEST_INVALID', `${where} is not valid JSON`, { cause })
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CofferError('ERR_OCI_MANIFEST_INVALID', `${where} is not a JSON object`)
  }
  const body = json as Record<string, unknown>
  const declared = normalizeContentType(o.declaredType)
  if (body.schemaVersion === 1 || (isSchema1MediaType(declared) && declared !== 'application/json')) {
    throw new CofferError(
      'ERR_OCI_SCHEMA1_UNSUPPORTED',
      `${where} is a Docker schema 1 manifest, which is deprecated and not supported; re-push the image with a current tool`,
    )
  }
  const bodyType = typeof body.mediaType === 'string' ? body.mediaType : undefined
  if (
    bodyType &&
    declared &&
    declared !== 'application/json' &&
    declared !== 'application/octet-stream' &&
    bodyType !== declared
  ) {
    throw new CofferError(
      'ERR_OCI_MANIFEST_INVALID',
      `${where} says it is ${bodyType} but was served or referenced as ${declared}`,
    )
  }
  const mediaType =
    bodyType ?? (declared && declared !== 'application/json' ? declared : guessMediaType(body))
  const digest = o.expectedDigest ?? digestOf(bytes)

  if (isManifestMediaType(mediaType)) {
    const parsed = manifestSchema.safeParse(body)
    if (!parsed.success) throw invalid(where, mediaType, describeIssues(parsed.error))
    return { kind: 'manifest', mediaType, bytes, digest, manifest: parsed.data }
  }
  if (isIndexMediaType(mediaType)) {
    const parsed = indexSchema.safeParse(body)
    if (!parsed.success) throw invalid(where, mediaType, describeIssues(parsed.error))
    return { kind: 'index', mediaType, bytes, digest, index: parsed.data }
  }
  throw new CofferError(
    'ERR_OCI_MEDIA_TYPE_UNKNOWN',
    `${where} has media type "${mediaType ?? '(none)'}", which is not an OCI or Docker v2 manifest or index`,
  )
}

function invalid(where: string, mediaType: string, detail: string): CofferError {
  return new CofferError('ERR_OCI_MANIFEST_INVALID', `${where} is not a valid ${mediaType}: ${detail}`)
}

/** containers/image `GuessMIMEType`, for documents without a `mediaType`. */
function guessMediaType(body: Record<string, unknown>): string | undefined {
  if (Array.isArray(body.manifests)) return MediaType.OciIndex
  if (body.config && typeof body.config === 'object' && Array.isArray(body.layers)) {
    const configType = (body.config as { mediaType?: unknown }).mediaType
    return configType === MediaType.DockerConfig ? MediaType.DockerManifest : MediaType.OciManifest
  }
  return undefined
}

/** `application/json; charset=utf-8` → `application/json`. */
export function normalizeContentType(value: string | undefined): string | undefined {
  const v = value?.split(';')[0]?.trim().toLowerCase()
  return v ? v : undefined
}
