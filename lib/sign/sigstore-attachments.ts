/**
 * cosign signatures as c/image "sigstore attachments" (spec §3.1; c/image `docker/docker_client.go`
 * sigstoreAttachmentTag, `docker/docker_image_dest.go` putSignaturesToSigstoreAttachments): an OCI
 * manifest at tag `<alg>-<hex>.sig` in the image's repository, **one layer per signature** whose
 * blob is the payload and whose annotations carry the base64 signature.
 *
 * Adding a signature fetches that manifest (if any), appends a layer unless an identical one is
 * there, lists the payload digests in the config's `rootfs.diff_ids`, and pushes it again.
 * Concurrent signers can lose each other's update (as with cosign); sign one at a time.
 */
import { Readable } from 'node:stream'
import { digestOf, parseDigest, type Digest } from '../oci/digest.js'
import { parseManifestDocument, type ManifestDocument } from '../oci/manifest.js'
import { MediaType } from '../oci/media-types.js'
import type { Repository } from '../oci/registry/repository.js'
import type { Descriptor } from '../oci/schemas.js'
import { CofferError } from '../util/errors.js'
import { readAllLimited, throwIfAborted, type Io } from '../util/io.js'
import { MAX_SIGNATURE_BYTES, MAX_SIGNATURES } from './limits.js'
import { SIGSTORE_PAYLOAD_MEDIA_TYPE, type Signature } from './signature.js'

/** `sha256-<hex>.sig`. */
export function sigstoreAttachmentTag(digest: Digest): string {
  const { algorithm, encoded } = parseDigest(digest)
  return `${algorithm}-${encoded}.sig`
}

/** The signatures attached to `digest`; none if the tag does not exist. */
export async function readSigstoreAttachments(
  repo: Repository,
  digest: Digest,
  o: Io = {},
): Promise<Signature[]> {
  const doc = await fetchAttachmentManifest(repo, digest, o)
  if (!doc) return []
  if (doc.kind !== 'manifest')
    throw new CofferError(
      'ERR_SIGN_SIGNATURE_INVALID',
      `${sigstoreAttachmentTag(digest)} is an index, not a signature manifest`,
    )
  if (doc.manifest.layers.length > MAX_SIGNATURES)
    throw new CofferError(
      'ERR_SIGN_TOO_MANY',
      `${sigstoreAttachmentTag(digest)} has more than ${MAX_SIGNATURES} signatures`,
    )
  const out: Signature[] = []
  for (const layer of doc.manifest.layers) {
    throwIfAborted(o.signal)
    out.push(await sigstoreSignatureOf(repo, layer, o))
  }
  return out
}

/** Appends one signature (payload + annotations) to the `.sig` manifest of `digest`. Returns false if it was already there. */
export async function appendSigstoreAttachment(
  repo: Repository,
  digest: Digest,
  payload: Uint8Array,
  annotations: Record<string, string>,
  o: Io = {},
): Promise<boolean> {
  const tag = sigstoreAttachmentTag(digest)
  const existing = await fetchAttachmentManifest(repo, digest, o)
  if (existing && existing.kind !== 'manifest')
    throw new CofferError('ERR_SIGN_SIGNATURE_INVALID', `${tag} is an index, not a signature manifest`)
  const layers: Descriptor[] = existing?.kind === 'manifest' ? [...existing.manifest.layers] : []
  const layer: Descriptor = {
    mediaType: SIGSTORE_PAYLOAD_MEDIA_TYPE,
    digest: digestOf(payload),
    size: payload.length,
    annotations,
  }
  if (layers.some((l) => l.digest === layer.digest && sameAnnotations(l.annotations ?? {}, annotations)))
    return false
  if (layers.length >= MAX_SIGNATURES)
    throw new CofferError('ERR_SIGN_TOO_MANY', `${tag} already has ${MAX_SIGNATURES} signatures`)
  layers.push(layer)

  // cosign's config shape (pkg/oci/empty): an empty image whose diff_ids list the payloads.
  const config = Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: [{ created: '0001-01-01T00:00:00Z' }],
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  )
  const configDesc: Descriptor = {
    mediaType: MediaType.OciConfig,
    digest: digestOf(config),
    size: config.length,
  }
  await uploadSmallBlob(repo, layer, payload, o)
  await uploadSmallBlob(repo, configDesc, config, o)
  const bytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers }),
  )
  const doc = parseManifestDocument(bytes, { source: tag })
  await repo.putManifest(tag, doc, o)
  return true
}

async function fetchAttachmentManifest(
  repo: Repository,
  digest: Digest,
  o: Io,
): Promise<ManifestDocument | undefined> {
  try {
    return await repo.getManifest(sigstoreAttachmentTag(digest), o)
  } catch (err) {
    if (err instanceof CofferError && err.code === 'ERR_REGISTRY_NOT_FOUND') return undefined
    throw err
  }
}

/** The cosign signature one layer holds: its payload (checked) and its annotations. */
export async function sigstoreSignatureOf(repo: Repository, layer: Descriptor, o: Io): Promise<Signature> {
  return {
    kind: 'sigstore',
    mimeType: layer.mediaType,
    payload: await readSignaturePayload(repo, layer, o),
    annotations: layer.annotations ?? {},
  }
}

/** A signature payload blob, size-limited and checked against its digest (the registry is untrusted). */
async function readSignaturePayload(repo: Repository, layer: Descriptor, o: Io): Promise<Uint8Array> {
  if (layer.size > MAX_SIGNATURE_BYTES)
    throw new CofferError(
      'ERR_SIGN_SIGNATURE_INVALID',
      `signature payload ${layer.digest} is ${layer.size} bytes, over the limit`,
    )
  const bytes = await readAllLimited(
    repo.openBlob(layer, o),
    MAX_SIGNATURE_BYTES,
    `signature payload ${layer.digest}`,
  )
  // The registry is untrusted: a payload that does not hash to its descriptor is not a signature.
  if (digestOf(bytes, parseDigest(layer.digest).algorithm) !== layer.digest || bytes.length !== layer.size)
    throw new CofferError(
      'ERR_SIGN_SIGNATURE_INVALID',
      `signature payload ${layer.digest} does not match its digest`,
    )
  return bytes
}

/** Uploads a small in-memory blob unless the repository has it. */
export async function uploadSmallBlob(
  repo: Repository,
  desc: Descriptor,
  data: Uint8Array,
  o: Io,
): Promise<void> {
  if (await repo.hasBlob(desc, o)) return
  await repo.uploadBlob(desc, async (offset) => Readable.from([Buffer.from(data.subarray(offset))]), o)
}

function sameAnnotations(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a)
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k])
}
