/** Media types coffer understands (image-spec `media-types.md`, Docker v2 schema 2). */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const

export type ManifestMediaType = typeof MediaType.OciManifest | typeof MediaType.DockerManifest
export type IndexMediaType = typeof MediaType.OciIndex | typeof MediaType.DockerManifestList

/** Everything we send in `Accept` for manifest requests. */
export const MANIFEST_ACCEPT: readonly string[] = [
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
]

export function isIndexMediaType(mt: string | undefined): mt is IndexMediaType {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList
}

export function isManifestMediaType(mt: string | undefined): mt is ManifestMediaType {
  return mt === MediaType.OciManifest || mt === MediaType.DockerManifest
}

export function isSchema1MediaType(mt: string | undefined): boolean {
  return mt === MediaType.DockerSchema1 || mt === MediaType.DockerSchema1Signed || mt === 'application/json'
}

/** The layer suffix that says how a layer is compressed (also for `+encrypted` variants later). */
export type Compression = 'none' | 'gzip' | 'zstd'

export function layerCompression(mt: string): Compression | undefined {
  const base = mt.endsWith('+encrypted') ? mt.slice(0, -'+encrypted'.length) : mt
  switch (base) {
    case MediaType.OciLayer:
    case MediaType.OciLayerNondistributable:
    case MediaType.DockerLayer:
    case MediaType.DockerForeignLayer:
      return 'none'
    case MediaType.OciLayerGzip:
    case MediaType.OciLayerNondistributableGzip:
    case MediaType.DockerLayerGzip:
    case MediaType.DockerForeignLayerGzip:
      return 'gzip'
    case MediaType.OciLayerZstd:
    case MediaType.OciLayerNondistributableZstd:
      return 'zstd'
    default:
      return undefined
  }
}

/** Compression by magic bytes, as containers/image detects it rather than trusting names. */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd)
    return 'zstd'
  return 'none'
}

/** Docker media types and their OCI equivalents (containers/image `manifest.OCI1FromManifest`). */
const DOCKER_TO_OCI: Record<string, string> = {
  [MediaType.DockerManifest]: MediaType.OciManifest,
  [MediaType.DockerManifestList]: MediaType.OciIndex,
  [MediaType.DockerConfig]: MediaType.OciConfig,
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerForeignLayerGzip]: MediaType.OciLayerNondistributableGzip,
  [MediaType.DockerForeignLayer]: MediaType.OciLayerNondistributable,
}

/** The OCI spelling of a Docker media type; anything else unchanged. */
export function toOciMediaType(mt: string): string {
  return DOCKER_TO_OCI[mt] ?? mt
}

export function isDockerMediaType(mt: string): boolean {
  return mt.startsWith('application/vnd.docker.')
}
