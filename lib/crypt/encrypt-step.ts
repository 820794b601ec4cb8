import { randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { Digest } from '../oci/digest.js'
import type { LayerFiles, LayerTransform, TransformedLayer } from '../oci/layer-transform.js'
import type { Descriptor } from '../oci/schemas.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { serializePrivateOptions, serializePublicOptions } from './block-cipher-options.js'
import { wrapForRecipients } from './key-wrapping.js'
import type { EncryptConfig, KeyWrapper } from './keywrap.js'
import { createLayerEncryptor, layerOptions } from './layer-cipher.js'
import { runLayerFileJob, type ParkedLayer } from './layer-file-job.js'
import { encryptedMediaType, isEncryptedMediaType } from './media-types.js'
import { PUBOPTS_ANNOTATION } from './keywrap.js'
import { spool } from './spool.js'

export interface EncryptOptions {
  wrappers: readonly KeyWrapper[]
  config: EncryptConfig
  /**
   * Layers to encrypt, skopeo's `--encrypt-layer` indexes: 0-based, negative counts from the end
   * (-1 is the top layer). Undefined means every layer.
   */
  layers?: readonly number[]
}

/**
 * The encryption step of the copy pipeline (containers/image `copy/encryption.go`): each selected
 * layer is encrypted with a fresh key (AES-256-CTR + HMAC-SHA256), spooled, and described anew:
 * `+encrypted` media type, the ciphertext's digest and size, the wrapped keys and the public
 * options as annotations. Layers that are already encrypted are copied as they are.
 */
export function encryptionStep(o: EncryptOptions): LayerTransform {
  return {
    wants(desc, index, count) {
      if (isEncryptedMediaType(desc.mediaType)) return false
      if (!o.layers) return true
      return o.layers.some((l) => {
        const i = l < 0 ? l + count : l
        if (i < 0 || i >= count)
          throw new CofferError(
            'ERR_INVALID_ARGUMENT',
            `layer index ${l} out of range (${count} layers exist)`,
          )
        return i === index
      })
    },
    async apply(
      desc: Descriptor,
      read: () => Promise<Readable>,
      io: Io,
      files: LayerFiles = {},
    ): Promise<TransformedLayer> {
      const { options, layer } = files.source
        ? await encryptFile(desc, files.source, files.target, io)
        : await encryptStream(desc, read, io)
      try {
        const { privateOptions, publicOptions } = options
        const keys = await wrapForRecipients(
          o.wrappers,
          o.config,
          serializePrivateOptions(privateOptions),
          io,
        )
        const { urls: _urls, ...rest } = desc
        const newDesc: Descriptor = {
          ...rest,
          mediaType: encryptedMediaType(desc.mediaType),
          digest: layer.digest,
          size: layer.size,
          annotations: {
            ...desc.annotations,
            ...keys,
            [PUBOPTS_ANNOTATION]: serializePublicOptions(publicOptions).toString('base64'),
          },
        }
        return { ...layer.parked, desc: newDesc }
      } catch (err) {
        await layer.parked.dispose()
        throw err
      }
    },
  }
}

interface EncryptedLayer {
  options: ReturnType<typeof layerOptions>
  layer: { digest: Digest; size: number; parked: ParkedLayer }
}

/** The fast path: a worker thread reads the source file and writes the target (or a spool). */
async function encryptFile(
  desc: Descriptor,
  source: string,
  target: string | undefined,
  io: Io,
): Promise<EncryptedLayer> {
  const key = randomBytes(32)
  const nonce = randomBytes(16)
  const { result, parked } = await runLayerFileJob(
    { op: 'encrypt', key, nonce },
    { path: source, digest: desc.digest, size: desc.size },
    target,
    io,
  )
  return {
    options: layerOptions(key, nonce, desc.digest, Buffer.from(result.hmac)),
    layer: { digest: result.digest, size: result.size, parked },
  }
}

/** Any source (a registry): the verified stream is encrypted on this thread into a spool. */
async function encryptStream(
  desc: Descriptor,
  read: () => Promise<Readable>,
  io: Io,
): Promise<EncryptedLayer> {
  const encryptor = createLayerEncryptor(desc.digest)
  const blob = await spool(await read(), [encryptor.stream], io)
  return {
    options: encryptor.options(),
    layer: { digest: blob.digest, size: blob.size, parked: { open: blob.open, dispose: blob.remove } },
  }
}
