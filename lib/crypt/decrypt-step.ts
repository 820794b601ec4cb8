import type { Readable } from 'node:stream'
import type { Digest } from '../oci/digest.js'
import type { LayerFiles, LayerTransform, TransformedLayer } from '../oci/layer-transform.js'
import type { Descriptor } from '../oci/schemas.js'
import type { Io } from '../util/io.js'
import type { PrivateOptions, PublicOptions } from './block-cipher-options.js'
import { decryptFailed } from './decrypt-failed.js'
import { ENC_ANNOTATION_PREFIX, type DecryptConfig, type KeyWrapper } from './keywrap.js'
import { createLayerDecryptor, layerDecryptionKey } from './layer-cipher.js'
import { runLayerFileJob, type ParkedLayer } from './layer-file-job.js'
import { unwrapLayerOptions } from './layer-options.js'
import { decryptedMediaType, isEncryptedMediaType } from './media-types.js'
import { spool } from './spool.js'

export interface DecryptOptions {
  wrappers: readonly KeyWrapper[]
  config: DecryptConfig
}

/**
 * The decryption step of the copy pipeline: each `+encrypted` layer is decrypted into a spool,
 * and only if its HMAC verified at EOF does it become the layer the destination receives
 * (ocicrypt lets most plaintext through before the verdict; coffer does not). The plaintext must
 * also hash to the digest the private options recorded. Every `org.opencontainers.image.enc.*`
 * annotation is dropped, as ocicrypt's FilterOutAnnotations does.
 */
export function decryptionStep(o: DecryptOptions): LayerTransform {
  return {
    wants: (desc) => isEncryptedMediaType(desc.mediaType),
    async apply(
      desc: Descriptor,
      read: () => Promise<Readable>,
      io: Io,
      files: LayerFiles = {},
    ): Promise<TransformedLayer> {
      const annotations = desc.annotations ?? {}
      const { priv, pub } = await unwrapLayerOptions(desc, o, io)
      const layer = files.source
        ? await decryptFile(desc, priv, pub, files.source, files.target, io)
        : await decryptStream(priv, pub, read, io)
      const kept = Object.fromEntries(
        Object.entries(annotations).filter(([k]) => !k.startsWith(ENC_ANNOTATION_PREFIX)),
      )
      const { annotations: _a, ...rest } = desc
      const newDesc: Descriptor = {
        ...rest,
        mediaType: decryptedMediaType(desc.mediaType),
        digest: layer.digest,
        size: layer.size,
        ...(Object.keys(kept).length ? { annotations: kept } : {}),
      }
      return { ...layer.parked, desc: newDesc }
    },
  }
}

interface DecryptedLayer {
  digest: Digest
  size: number
  parked: ParkedLayer
}

/**
 * The fast path: a worker thread reads the source file and writes the plaintext to the target
 * (0600, fsynced) or a spool; the job fails, removing what it wrote, unless the HMAC and the
 * recorded plaintext digest both check out, so the copy never commits unauthenticated plaintext.
 */
async function decryptFile(
  desc: Descriptor,
  priv: PrivateOptions,
  pub: PublicOptions,
  source: string,
  target: string | undefined,
  io: Io,
): Promise<DecryptedLayer> {
  const { key, nonce } = layerDecryptionKey(priv, pub)
  const { result, parked } = await runLayerFileJob(
    { op: 'decrypt', key, nonce, hmac: pub.hmac, ...(priv.digest ? { plaintextDigest: priv.digest } : {}) },
    { path: source, digest: desc.digest, size: desc.size },
    target,
    io,
  )
  return { digest: result.digest, size: result.size, parked }
}

/** Any source (a registry): the verified stream is decrypted on this thread into a spool. */
async function decryptStream(
  priv: PrivateOptions,
  pub: PublicOptions,
  read: () => Promise<Readable>,
  io: Io,
): Promise<DecryptedLayer> {
  const blob = await spool(await read(), [createLayerDecryptor(priv, pub)], io)
  if (priv.digest && blob.digest !== priv.digest) {
    await blob.remove()
    throw decryptFailed()
  }
  return { digest: blob.digest, size: blob.size, parked: { open: blob.open, dispose: blob.remove } }
}
