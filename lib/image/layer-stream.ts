/**
 * What the pull needs around one layer's checks (`layer-checks.ts`, run by the stage workers):
 * the layer's unwrapped key before its blob is fetched, sampled progress, and the error a
 * consumer sees when reading a layer fails.
 */
import { unwrapStreamDecryption, type StreamDecryption } from '../crypt/decrypt-stream.js'
import type { DecryptOptions } from '../crypt/decrypt-step.js'
import { isEncryptedMediaType } from '../crypt/media-types.js'
import type { Descriptor } from '../oci/schemas.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'

/** How often `onProgress` hears how much of the blob was fetched. */
export const PROGRESS_INTERVAL_MS = 200

/**
 * The layer's key, unwrapped, when it is encrypted (ERR_CRYPT_NO_KEY without decryption options):
 * a missing or revoked key fails before the blob is fetched.
 */
export async function layerDecryption(
  desc: Descriptor,
  decrypt: DecryptOptions | undefined,
  io: Io,
): Promise<StreamDecryption | undefined> {
  if (!isEncryptedMediaType(desc.mediaType)) return undefined
  if (!decrypt)
    throw new CofferError(
      'ERR_CRYPT_NO_KEY',
      `layer ${desc.digest} is encrypted; give a decryption key or a KBS`,
    )
  return unwrapStreamDecryption(desc, decrypt, io)
}

/**
 * Reports `bytes()` to `onProgress` every 200 ms while it grows: sampled, not per chunk, so no
 * work per chunk and few events per layer. Returns the stop function.
 */
export function sampleProgress(bytes: () => number, onProgress?: (n: number) => void): () => void {
  if (!onProgress) return () => {}
  let reported = 0
  const timer = setInterval(() => {
    const n = bytes()
    if (n !== reported) onProgress((reported = n))
  }, PROGRESS_INTERVAL_MS).unref()
  return () => clearInterval(timer)
}

/** A failure while reading a layer, as the consumer sees it: coffer's own errors pass unchanged. */
export function layerReadError(desc: Descriptor, err: unknown): CofferError {
  return err instanceof CofferError
    ? err
    : new CofferError(
        'ERR_OCI_LAYER_INVALID',
        `layer ${desc.digest} cannot be read: ${(err as Error).message}`,
        {
          cause: err,
        },
      )
}
