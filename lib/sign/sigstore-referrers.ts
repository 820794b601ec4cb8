/**
 * cosign signatures as OCI 1.1 referrers (cosign `--registry-referrers-mode=oci-1-1`): one
 * artifact manifest per signature, `artifactType` `application/vnd.dev.cosign.artifact.sig.v1+json`,
 * the empty config, one layer holding the payload with the signature annotation, and `subject`
 * naming the signed manifest. Where the registry has no referrers API the fallback tag
 * `<alg>-<hex>` lists them (lib/oci/registry/referrers-tag.ts); readers use either.
 */
import { digestOf, type Digest } from '../oci/digest.js'
import { parseManifestDocument } from '../oci/manifest.js'
import { MediaType } from '../oci/media-types.js'
import { addToReferrersTag } from '../oci/registry/referrers-tag.js'
import type { Repository } from '../oci/registry/repository.js'
import type { Descriptor } from '../oci/schemas.js'
import { CofferError } from '../util/errors.js'
import { throwIfAborted, type Io } from '../util/io.js'
import { MAX_SIGNATURES } from './limits.js'
import { SIGSTORE_PAYLOAD_MEDIA_TYPE, type Signature } from './signature.js'
import { sigstoreSignatureOf, uploadSmallBlob } from './sigstore-attachments.js'

export const COSIGN_SIGNATURE_ARTIFACT_TYPE = 'application/vnd.dev.cosign.artifact.sig.v1+json'
const EMPTY_CONFIG = Buffer.from('{}')

/** Pushes one signature as a referrer of `subject`. Returns the referrer manifest's digest. */
export async function attachSigstoreReferrer(
  repo: Repository,
  subject: Descriptor,
  payload: Uint8Array,
  annotations: Record<string, string>,
  o: Io = {},
): Promise<Digest> {
  const layer: Descriptor = {
    mediaType: SIGSTORE_PAYLOAD_MEDIA_TYPE,
    digest: digestOf(payload),
    size: payload.length,
    annotations,
  }
  const config: Descriptor = {
    mediaType: MediaType.OciEmpty,
    digest: digestOf(EMPTY_CONFIG),
    size: EMPTY_CONFIG.length,
  }
  await uploadSmallBlob(repo, layer, payload, o)
  await uploadSmallBlob(repo, config, EMPTY_CONFIG, o)
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: COSIGN_SIGNATURE_ARTIFACT_TYPE,
      config,
      layers: [layer],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    }),
  )
  const doc = parseManifestDocument(bytes, {
    declaredType: MediaType.OciManifest,
    expectedDigest: digestOf(bytes),
  })
  const { subjectIndexed } = await repo.putManifest(doc.digest, doc, o)
  if (!subjectIndexed) await addToReferrersTag(repo, subject, doc, o)
  return doc.digest
}

/** Every cosign signature attached to `digest` as a referrer (API or fallback tag). */
export async function readSigstoreReferrers(
  repo: Repository,
  digest: Digest,
  o: Io = {},
): Promise<Signature[]> {
  const referrers = (
    await repo.listReferrers(digest, { ...o, artifactType: COSIGN_SIGNATURE_ARTIFACT_TYPE })
  ).filter(
    // A registry may ignore the filter, and the fallback index is unfiltered.
    (d) => d.artifactType === COSIGN_SIGNATURE_ARTIFACT_TYPE,
  )
  if (referrers.length > MAX_SIGNATURES)
    throw new CofferError(
      'ERR_SIGN_TOO_MANY',
      `${digest} has more than ${MAX_SIGNATURES} signature referrers`,
    )
  const out: Signature[] = []
  for (const ref of referrers) {
    throwIfAborted(o.signal)
    const doc = await repo.getManifest(ref.digest, o)
    // The subject must be the image: a referrer listed for it but pointing elsewhere is not its signature.
    if (
      doc.kind !== 'manifest' ||
      doc.manifest.subject?.digest !== digest ||
      doc.manifest.layers.length !== 1
    )
      throw new CofferError(
        'ERR_SIGN_SIGNATURE_INVALID',
        `referrer ${ref.digest} is not a cosign signature of ${digest}`,
      )
    out.push(await sigstoreSignatureOf(repo, doc.manifest.layers[0]!, o))
  }
  return out
}
