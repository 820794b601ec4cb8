import { digestOf } from './digest.js'
import { parseManifestDocument, type ManifestDocument } from './manifest.js'
import { isDockerMediaType, MediaType, toOciMediaType } from './media-types.js'
import type { Descriptor } from './schemas.js'

/**
 * A manifest with new layers, every other field kept. A Docker v2s2 manifest cannot name OCI-only
 * layer types (encrypted ones), so when one appears the whole manifest becomes OCI, as
 * containers/image does when it encrypts (`copy/manifest.go`, requiresOCIEncryption): the config
 * blob stays byte-identical, only descriptors' media types change.
 */
export function rewriteManifest(
  doc: ManifestDocument & { kind: 'manifest' },
  layers: Descriptor[],
): ManifestDocument {
  const m = doc.manifest
  const toOci = isDockerMediaType(doc.mediaType) && layers.some((l) => !isDockerMediaType(l.mediaType))
  const body = toOci
    ? {
        ...m,
        mediaType: MediaType.OciManifest,
        config: { ...m.config, mediaType: toOciMediaType(m.config.mediaType) },
        layers: layers.map((l) => ({ ...l, mediaType: toOciMediaType(l.mediaType) })),
      }
    : { ...m, layers }
  return serialize(body, toOci ? MediaType.OciManifest : doc.mediaType)
}

/** An index whose child descriptors changed (their manifests were rewritten). */
export function rewriteIndex(
  doc: ManifestDocument & { kind: 'index' },
  manifests: Descriptor[],
): ManifestDocument {
  const toOci = isDockerMediaType(doc.mediaType) && manifests.some((d) => !isDockerMediaType(d.mediaType))
  return toOci
    ? serialize({ ...doc.index, mediaType: MediaType.OciIndex, manifests }, MediaType.OciIndex)
    : serialize({ ...doc.index, manifests }, doc.mediaType)
}

function serialize(body: object, mediaType: string): ManifestDocument {
  const bytes = Buffer.from(JSON.stringify(body))
  return parseManifestDocument(bytes, { declaredType: mediaType, expectedDigest: digestOf(bytes) })
}
