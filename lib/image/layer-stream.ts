/**
 * One layer of a pulled image as the tar stream an unpacker consumes, with every check on the way
 * (`layer-checks.ts`): the blob's digest and size (as fetched, resumable), decryption when the
 * layer is `+encrypted` (HMAC and the recorded plaintext digest), decompression by media type, and
 * the config's diff_id over the tar itself. Decryption streams (no spool), so every check but the
 * blob's size fails at the end of the stream: a consumer must treat what it read as untrusted
 * until the stream ended cleanly (the layer store unpacks into staging and commits only then).
 */
import { PassThrough, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { unwrapStreamDecryption, type StreamDecryption } from '../crypt/decrypt-stream.js'
import type { DecryptOptions } from '../crypt/decrypt-step.js'
import { isEncryptedMediaType } from '../crypt/media-types.js'
import type { Digest } from '../oci/digest.js'
import type { ImageSource } from '../oci/image-transport.js'
import type { Descriptor } from '../oci/schemas.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { layerCheckStream, layerChecks } from './layer-checks.js'

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
 * Returns the uncompressed tar, which errors at its end if any check failed. `diffId` is checked
 * here when given; pass `undefined` when the consumer hashes the tar itself (the layer store does,
 * and commits nothing on a mismatch), so a pull hashes each tar once. `onProgress` hears the bytes
 * of the blob fetched so far, every 200 ms while that number grows.
 */
export async function openLayerTar(
  source: ImageSource,
  desc: Descriptor,
  diffId: Digest | undefined,
  o: Io & { decrypt?: DecryptOptions; onProgress?: (fetched: number) => void } = {},
): Promise<Readable> {
  const checks = layerChecks(desc, await layerDecryption(desc, o.decrypt, o), diffId)
  // The blob as stored, checked against its descriptor while it streams.
  const blob = await source.getBlob(desc, o)
  const checked = layerCheckStream(checks)
  const tar = new PassThrough()
  const stopProgress = sampleProgress(() => checked.fetched, o.onProgress)
  // Errors anywhere in the chain reach `tar`, the consumer's stream.
  pipeline([blob, checked, tar])
    .finally(stopProgress)
    .catch((err: unknown) => tar.destroy(layerReadError(desc, err)))
  return tar
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
