import { parseImageName, formatImageName } from '../../lib/oci/image-name.js'
import type { ImageSource } from '../../lib/oci/image-transport.js'
import type { ManifestDocument } from '../../lib/oci/manifest.js'
import { openImageSource } from '../../lib/oci/open-image.js'
import { formatPlatform, hostPlatform, parsePlatform, requireManifest } from '../../lib/oci/platform.js'
import { imageConfigSchema, describeIssues, type Descriptor } from '../../lib/oci/schemas.js'
import { CofferError } from '../../lib/util/errors.js'
import { MAX_CONFIG_BYTES } from '../../lib/util/limits.js'
import { describeLayerEncryption, type LayerEncryption } from '../../lib/crypt/describe.js'
import type { KeyWrapper } from '../../lib/crypt/keywrap.js'
import { isEncryptedMediaType } from '../../lib/crypt/media-types.js'
import { registryAccess } from '../flags.js'
import { humanBytes } from '../progress.js'
import type { CommandContext } from '../run.js'

/** `coffer inspect IMAGE`: what is in an image, without pulling its layers. */
export async function inspectCommand(
  image: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const name = parseImageName(image)
  const src = await openImageSource(name, await registryAccess(opts, ''), ctx)
  try {
    const top = await src.getManifest(undefined, ctx)
    if (opts.raw && !opts.config) {
      process.stdout.write(top.bytes)
      return
    }
    let manifestDoc: ManifestDocument = top
    let platform: string | undefined
    if (top.kind === 'index') {
      const want = opts.platform ? parsePlatform(opts.platform as string) : hostPlatform()
      const chosen = requireManifest(top.index.manifests, want, src.name)
      manifestDoc = await src.getManifest(chosen.digest, ctx)
      platform = chosen.platform ? formatPlatform(chosen.platform) : undefined
    }
    if (manifestDoc.kind !== 'manifest')
      throw new CofferError(
        'ERR_OCI_MANIFEST_INVALID',
        `${src.name}: nested indexes are not supported by inspect`,
      )
    const manifest = manifestDoc.manifest
    const configBytes = await src.getBlobBytes(manifest.config, MAX_CONFIG_BYTES, ctx)
    if (opts.config) {
      process.stdout.write(
        opts.raw ? configBytes : `${JSON.stringify(JSON.parse(configBytes.toString('utf8')), null, 2)}\n`,
      )
      return
    }
    // Key wrappers (jose, openpgp, ASN.1) load only when there is an encrypted layer to describe.
    const wrappers = manifest.layers.some((l) => isEncryptedMediaType(l.mediaType))
      ? (await import('../../plugins/keywraps.js')).keyWrappers()
      : []
    const info = describe(wrappers, src, top, manifestDoc, configBytes, platform)
    if (ctx.json) {
      ctx.emit(info)
      return
    }
    printHuman(info, formatImageName(name))
  } finally {
    await src.close()
  }
}

interface ImageInfo {
  name: string
  digest: string
  mediaType: string
  index?: { digest: string; platform?: string; mediaType: string; size: number }[]
  manifestDigest: string
  platform?: string
  created?: string
  config: { digest: string; mediaType: string; size: number }
  layers: {
    digest: string
    mediaType: string
    size: number
    annotations?: Record<string, string>
    encryption?: LayerEncryption[]
  }[]
  totalLayerBytes: number
  diffIds?: string[]
  annotations?: Record<string, string>
}

function describe(
  wrappers: readonly KeyWrapper[],
  src: ImageSource,
  top: ManifestDocument,
  doc: ManifestDocument & { kind: 'manifest' },
  configBytes: Buffer,
  platform?: string,
): ImageInfo {
  const { manifest } = doc
  let config: ReturnType<typeof imageConfigSchema.safeParse>['data']
  const isImageConfig =
    manifest.config.mediaType.includes('image.config') ||
    manifest.config.mediaType.includes('container.image')
  if (isImageConfig) {
    const parsed = imageConfigSchema.safeParse(JSON.parse(configBytes.toString('utf8')))
    if (!parsed.success)
      throw new CofferError(
        'ERR_OCI_MANIFEST_INVALID',
        `${src.name}: bad image config: ${describeIssues(parsed.error)}`,
      )
    config = parsed.data
  }
  const layer = (d: Descriptor): ImageInfo['layers'][number] => {
    const encryption = describeLayerEncryption(d, wrappers)
    return {
      digest: d.digest,
      mediaType: d.mediaType,
      size: d.size,
      ...(d.annotations ? { annotations: d.annotations } : {}),
      ...(encryption ? { encryption } : {}),
    }
  }
  return {
    name: src.name,
    digest: top.digest,
    mediaType: top.mediaType,
    ...(top.kind === 'index'
      ? {
          index: top.index.manifests.map((m) => ({
            digest: m.digest,
            mediaType: m.mediaType,
            size: m.size,
            ...(m.platform ? { platform: formatPlatform(m.platform) } : {}),
          })),
        }
      : {}),
    manifestDigest: doc.digest,
    ...((platform ?? (config?.os && config.architecture))
      ? {
          platform:
            platform ??
            formatPlatform({
              os: config!.os!,
              architecture: config!.architecture!,
              ...(config?.variant ? { variant: config.variant } : {}),
            }),
        }
      : {}),
    ...(config?.created ? { created: config.created } : {}),
    config: {
      digest: manifest.config.digest,
      mediaType: manifest.config.mediaType,
      size: manifest.config.size,
    },
    layers: manifest.layers.map(layer),
    totalLayerBytes: manifest.layers.reduce((n, l) => n + l.size, 0),
    ...(config ? { diffIds: config.rootfs.diff_ids } : {}),
    ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
  }
}

function printHuman(info: ImageInfo, name: string): void {
  const out: string[] = []
  const row = (k: string, v: string): number => out.push(`${`${k}:`.padEnd(12)}${v}`)
  row('Image', name)
  row('Digest', info.digest)
  row('MediaType', info.mediaType)
  if (info.index) {
    out.push(`Index (${info.index.length} manifests):`)
    for (const m of info.index)
      out.push(`  ${m.digest}  ${(m.platform ?? '(no platform)').padEnd(16)} ${humanBytes(m.size)}`)
    row('Selected', info.manifestDigest)
  }
  if (info.platform) row('Platform', info.platform)
  if (info.created) row('Created', info.created)
  row('Config', `${info.config.digest} (${info.config.mediaType})`)
  out.push(`Layers (${info.layers.length}, ${humanBytes(info.totalLayerBytes)}):`)
  for (const l of info.layers) {
    out.push(`  ${l.digest}  ${humanBytes(l.size).padStart(10)}  ${l.mediaType}`)
    for (const e of l.encryption ?? []) {
      out.push(
        `      encrypted for ${e.scheme}: ${e.recipients.length ? e.recipients.join(', ') : 'recipients not shown'}`,
      )
    }
  }
  process.stdout.write(`${out.join('\n')}\n`)
}
