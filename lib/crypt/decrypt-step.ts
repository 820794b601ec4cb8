import type { Readable } from 'node:stream'
import type { LayerTransform, TransformedLayer } from '../oci/layer-transform.js'
import type { Descriptor } from '../oci/schemas.js'
import type { Io } from '../util/io.js'
import { decryptFailed } from './decrypt-failed.js'
import { ENC_ANNOTATION_PREFIX, type DecryptConfig, type KeyWrapper } from './keywrap.js'
import { createLayerDecryptor } from './layer-cipher.js'
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
    async apply(desc: Descriptor, read: () => Promise<Readable>, io: Io): Promise<TransformedLayer> {
      const annotations = desc.annotations ?? {}
      const { priv, pub } = await unwrapLayerOptions(desc, o, io)
      const blob = await spool(await read(), [createLayerDecryptor(priv, pub)], io)
      if (priv.digest && blob.digest !== priv.digest) {
        await blob.remove()
        throw decryptFailed()
      }
      const kept = Object.fromEntries(
        Object.entries(annotations).filter(([k]) => !k.startsWith(ENC_ANNOTATION_PREFIX)),
      )
      const { annotations: _a, ...rest } = desc
      const newDesc: Descriptor = {
        ...rest,
        mediaType: decryptedMediaType(desc.mediaType),
        digest: blob.digest,
        size: blob.size,
        ...(Object.keys(kept).length ? { annotations: kept } : {}),
      }
      return { desc: newDesc, open: blob.open, dispose: blob.remove }
    },
  }
}
