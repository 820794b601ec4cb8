import type { Digest } from '../oci/digest.js'
import type { Descriptor } from '../oci/schemas.js'
import type { Io } from '../util/io.js'
import type { DecryptOptions } from './decrypt-step.js'
import { layerKey } from './layer-cipher.js'
import type { LayerKey } from './layer-decryption.js'
import { unwrapLayerOptions } from './layer-options.js'

/**
 * What decrypting one layer as it streams takes, as plain data (a worker thread may do it): the
 * key material, and the plaintext digest the private options recorded (if any), checked as well.
 * The pull decrypts in the stream into the layer store's staging, where nothing counts until
 * every check passed at the end (`lib/image/layer-checks.ts`); the copy pipeline spools instead
 * (`decryptionStep`), as its destination would publish what it reads.
 */
export interface StreamDecryption {
  readonly key: LayerKey
  readonly plaintextDigest?: Digest
}

/** Unwraps the layer's key (a KBS may be asked): fails before anything of the blob is fetched. */
export async function unwrapStreamDecryption(
  desc: Descriptor,
  o: DecryptOptions,
  io: Io,
): Promise<StreamDecryption> {
  const { priv, pub } = await unwrapLayerOptions(desc, o, io)
  return { key: layerKey(priv, pub), ...(priv.digest ? { plaintextDigest: priv.digest } : {}) }
}
