import { copyImage } from '../../lib/oci/copy.js'
import { parseImageName } from '../../lib/oci/image-name.js'
import { openImageDestination, openImageSource } from '../../lib/oci/open-image.js'
import { parsePlatform } from '../../lib/oci/platform.js'
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../../lib/oci/registry/blob-upload.js'
import type { KeyWrapper } from '../../lib/crypt/keywrap.js'
import type { LayerTransform } from '../../lib/oci/layer-transform.js'
import { CofferError } from '../../lib/util/errors.js'
import { intFlag, registryAccess, sizeFlag } from '../flags.js'
import { copyProgress, humanBytes } from '../progress.js'
import type { CommandContext } from '../run.js'
import { attestedKbsClient } from '../kbs-client-flags.js'

/** What `coffer encrypt` / `coffer decrypt` require of `coffer copy`'s flags. */
export type CopyMode = 'copy' | 'encrypt' | 'decrypt'

/** `coffer copy SRC DST` (and `encrypt` / `decrypt`, which are copies that must transform). */
export async function copyCommand(
  source: string,
  destination: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
  mode: CopyMode = 'copy',
): Promise<void> {
  const srcName = parseImageName(source)
  const destName = parseImageName(destination)
  if (opts.all && opts.platform)
    throw new CofferError('ERR_USAGE', '--all copies every platform; it cannot be combined with --platform')
  const platform = opts.platform ? parsePlatform(opts.platform as string) : undefined
  const concurrency = intFlag(opts.concurrency, '--concurrency', 1, 64)
  const chunkSize =
    opts.uploadChunkSize !== undefined ? sizeFlag(opts.uploadChunkSize, '--upload-chunk-size') : undefined
  if (chunkSize !== undefined && (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE)) {
    throw new CofferError(
      'ERR_USAGE',
      `--upload-chunk-size must be between ${humanBytes(MIN_CHUNK_SIZE)} and ${humanBytes(MAX_CHUNK_SIZE)}`,
    )
  }

  const cleanups: (() => Promise<void>)[] = []
  try {
    await copyWith(await layerTransformFrom(opts, mode, cleanups))
  } finally {
    for (const c of cleanups) await c()
  }

  async function copyWith(layerTransform: LayerTransform | undefined): Promise<void> {
    const progress = await copyProgress(ctx)
    const src = await openImageSource(srcName, await registryAccess(opts, 'src', progress.sink), ctx)
    try {
      const dest = await openImageDestination(destName, {
        ...(await registryAccess(opts, 'dest', progress.sink)),
        ...(chunkSize ? { chunkSize } : {}),
      })
      try {
        const started = Date.now()
        const result = await copyImage(src, dest, {
          signal: ctx.signal,
          concurrency,
          all: opts.all === true,
          ...(platform ? { platform } : {}),
          ...(layerTransform ? { layerTransform } : {}),
          onEvent: progress.sink,
        })
        progress.stop()
        const seconds = (Date.now() - started) / 1000
        ctx.emit({
          result: {
            digest: result.digest,
            mediaType: result.mediaType,
            blobsCopied: result.blobsCopied,
            blobsSkipped: result.blobsSkipped,
            bytesCopied: result.bytesCopied,
            seconds,
          },
        })
        ctx.say(
          `Copied ${source} to ${destination}: ${result.digest} (${result.blobsCopied} blobs, ${humanBytes(result.bytesCopied)} in ${seconds.toFixed(1)} s; ${result.blobsSkipped} skipped: already there or mounted)`,
        )
      } finally {
        progress.stop()
        await dest.close()
      }
    } finally {
      await src.close()
    }
  }
}

/** The encryption or decryption step the flags ask for, with skopeo's rules on combining them. */
async function layerTransformFrom(
  opts: Record<string, unknown>,
  mode: CopyMode,
  cleanups: (() => Promise<void>)[],
): Promise<LayerTransform | undefined> {
  const encryptionKeys = (opts.encryptionKey as string[] | undefined) ?? []
  const decryptionKeys = (opts.decryptionKey as string[] | undefined) ?? []
  const encryptLayers = (opts.encryptLayer as string[] | undefined) ?? []
  // A plain copy loads no crypto at all (jose, openpgp, ASN.1, gRPC): start-up and RSS stay small.
  if (mode === 'copy' && !encryptionKeys.length && !decryptionKeys.length && !encryptLayers.length)
    return undefined
  const { decryptConfigFrom, encryptConfigFrom, layerIndexesFrom } = await import('../crypt-flags.js')
  const layers = layerIndexesFrom(encryptLayers)
  const kek = opts.kek !== undefined ? { kek: opts.kek as string } : {}
  if (encryptionKeys.length && decryptionKeys.length) {
    throw new CofferError('ERR_USAGE', '--encryption-key and --decryption-key cannot be used together')
  }
  if (layers && !encryptionKeys.length)
    throw new CofferError('ERR_USAGE', '--encrypt-layer needs --encryption-key')
  if (mode === 'encrypt' && !encryptionKeys.length)
    throw new CofferError('ERR_USAGE', 'coffer encrypt needs at least one --encryption-key')
  const kbsUrl = (opts.kbsUrl as string | undefined) ?? undefined
  if (mode === 'decrypt' && !decryptionKeys.length && !kbsUrl)
    throw new CofferError(
      'ERR_USAGE',
      'coffer decrypt needs at least one --decryption-key, or --kbs-url to fetch kbs:/// keys',
    )
  if (kbsUrl && encryptionKeys.length)
    throw new CofferError(
      'ERR_USAGE',
      '--kbs-url is for decryption; to encrypt for a kbs:/// key give its KEK with --kek',
    )
  const { allKeyWrappers } = await import('../../plugins/keywraps.js')
  let wrappers = await allKeyWrappers()
  if (kbsUrl) wrappers = await withKbsKekSource(wrappers, kbsUrl, opts, cleanups)
  // A provider named on the command line but absent from the config file would silently wrap for
  // nobody (or not decrypt at all): say which one is missing and where providers are configured.
  const named = [...encryptionKeys, ...decryptionKeys]
    .filter((k) => k.startsWith('provider:'))
    .map((k) => k.split(':')[1] ?? '')
  for (const name of named) {
    if (!wrappers.some((w) => w.name === `provider.${name}`)) {
      throw new CofferError(
        'ERR_CRYPT_RECIPIENT_INVALID',
        `key provider "${name}" is not configured: add it to the file named by OCICRYPT_KEYPROVIDER_CONFIG`,
      )
    }
  }
  if (encryptionKeys.length) {
    const { encryptionStep } = await import('../../lib/crypt/encrypt-step.js')
    return encryptionStep({
      wrappers,
      config: await encryptConfigFrom(encryptionKeys, kek),
      ...(layers ? { layers } : {}),
    })
  }
  if (decryptionKeys.length || kbsUrl) {
    const { decryptionStep } = await import('../../lib/crypt/decrypt-step.js')
    return decryptionStep({ wrappers, config: await decryptConfigFrom(decryptionKeys, kek) })
  }
  return undefined
}

/**
 * Replaces the kbs key wrapper with one that fetches KEKs from the KBS at `url`, attesting with
 * `--attester` (or the detected TEE). The client lives as long as the process: one handshake,
 * one token, for every layer.
 */
async function withKbsKekSource(
  wrappers: KeyWrapper[],
  url: string,
  opts: Record<string, unknown>,
  cleanups: (() => Promise<void>)[],
): Promise<KeyWrapper[]> {
  const { createKbsKeyWrapper } = await import('../../plugins/keywrap/kbs/index.js')
  const client = await attestedKbsClient({ ...opts, kbsUrl: url })
  cleanups.push(() => client.close())
  const kbs = createKbsKeyWrapper((kid, io) => client.getResource(kid, io))
  return wrappers.map((w) => (w.name === 'kbs' ? kbs : w))
}
