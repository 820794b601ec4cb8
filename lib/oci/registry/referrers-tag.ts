import { CofferError } from '../../util/errors.js'
import type { Io } from '../../util/io.js'
import { digestOf } from '../digest.js'
import { parseManifestDocument, type ManifestDocument } from '../manifest.js'
import { MediaType } from '../media-types.js'
import type { Descriptor, Index } from '../schemas.js'
import { referrersTag, type Repository } from './repository.js'

/**
 * A registry without the referrers API: keeps the fallback tag's index (`<alg>-<hex>`) up to date
 * with `doc`, a manifest whose `subject` is `subject`, as the distribution-spec asks of clients
 * ("Pushing Manifests with Subject"). Idempotent.
 */
export async function addToReferrersTag(
  repo: Repository,
  subject: Descriptor,
  doc: ManifestDocument,
  o: Io,
): Promise<void> {
  const tag = referrersTag(subject.digest)
  let index: Index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }
  try {
    const existing = await repo.getManifest(tag, o)
    if (existing.kind === 'index') index = existing.index
  } catch (err) {
    if (!(err instanceof CofferError && err.code === 'ERR_REGISTRY_NOT_FOUND')) throw err
  }
  if (index.manifests.some((m) => m.digest === doc.digest)) return
  const body = doc.kind === 'manifest' ? doc.manifest : doc.index
  const artifactType =
    body.artifactType ?? (doc.kind === 'manifest' ? doc.manifest.config.mediaType : undefined)
  const entry: Descriptor = {
    mediaType: doc.mediaType,
    digest: doc.digest,
    size: doc.bytes.length,
    ...(artifactType ? { artifactType } : {}),
    ...(body.annotations ? { annotations: body.annotations } : {}),
  }
  const bytes = Buffer.from(JSON.stringify({ ...index, manifests: [...index.manifests, entry] }))
  const next = parseManifestDocument(bytes, {
    declaredType: MediaType.OciIndex,
    expectedDigest: digestOf(bytes),
  })
  await repo.putManifest(tag, next, o)
}
