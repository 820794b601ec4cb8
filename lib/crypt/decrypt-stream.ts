import type { Transform } from 'node:stream'
import type { Descriptor } from '../oci/schemas.js'
import type { Io } from '../util/io.js'
import type { DecryptOptions } from './decrypt-step.js'
import { createLayerDecryptor } from './layer-cipher.js'
import { unwrapLayerOptions } from './layer-options.js'

/**
 * Decrypts an encrypted layer as it streams, for a consumer that stages what it reads and commits
 * only once the stream ended cleanly (the layer store's staging directory): plaintext flows before
 * the verdict, and the stream fails at its end, with ERR_CRYPT_DECRYPT_FAILED, if the HMAC or the
 * plaintext digest the private options recorded does not match. Nothing from a tampered layer is
 * ever committed, and the layer is not written to a spool and read back first. The copy pipeline
 * keeps the spool (`decryptionStep`): its destination would publish what it reads.
 */
export async function layerDecryptor(desc: Descriptor, o: DecryptOptions, io: Io): Promise<Transform> {
  const { priv, pub } = await unwrapLayerOptions(desc, o, io)
  return createLayerDecryptor(priv, pub, priv.digest || undefined)
}
