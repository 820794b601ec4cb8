/**
 * One layer of a pulled image as the tar stream an unpacker consumes, with every check on the way:
 * the blob's digest and size (as fetched, resumable), decryption when the layer is `+encrypted`
 * (HMAC and the recorded plaintext digest), decompression by media type, and the config's diff_id
 * over the tar itself. Decryption streams (no spool), so every check but the blob's size fails at
 * the end of the stream: a consumer must treat what it read as untrusted until the stream ended
 * cleanly (the layer store unpacks into staging and commits only then).
 */
import { PassThrough, Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import * as zlib from 'node:zlib'
import { Decompress as ZstdDecompress } from 'fzstd'
import type { DecryptOptions } from '../crypt/decrypt-step.js'
import { layerDecryptor } from '../crypt/decrypt-stream.js'
import { isEncryptedMediaType } from '../crypt/media-types.js'
import type { Digest } from '../oci/digest.js'
import { verifyingStream } from '../oci/digest.js'
import type { ImageSource } from '../oci/image-transport.js'
import { layerCompression } from '../oci/media-types.js'
import type { Descriptor } from '../oci/schemas.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'

/**
 * zlib's output chunk. Each output chunk costs a hand-off to the libuv pool and back, so larger
 * ones save main-thread time (measured on 128 MiB of gzip fed in 64 KiB network chunks: 16 KiB
 * out took 730 ms of main-thread CPU, 256 KiB out 180 ms). Gathering the input into larger
 * chunks first gained little more and cost one more copy of every byte (more GC, higher RSS).
 */
const INFLATE_OUT = 256 * 1024
/** How often `onProgress` hears how much of the blob was fetched. */
const PROGRESS_INTERVAL_MS = 200

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
  const compression = layerCompression(desc.mediaType)
  if (!compression)
    throw new CofferError(
      'ERR_OCI_MEDIA_TYPE_UNKNOWN',
      `layer ${desc.digest} has media type ${desc.mediaType}, which is not a layer`,
    )
  const steps: Transform[] = []
  if (isEncryptedMediaType(desc.mediaType)) {
    if (!o.decrypt)
      throw new CofferError(
        'ERR_CRYPT_NO_KEY',
        `layer ${desc.digest} is encrypted; give a decryption key or a KBS`,
      )
    // The key first: a missing or revoked key fails before the blob is fetched.
    steps.push(await layerDecryptor(desc, o.decrypt, o))
  }
  // The blob as stored, checked against its descriptor while it streams.
  const blob = await source.getBlob(desc, o)
  const fetched = verifyingStream(desc.digest as Digest, desc.size)
  steps.unshift(fetched)
  if (compression !== 'none') steps.push(decompressor(compression))
  if (diffId) steps.push(verifyingStream(diffId))
  const tar = new PassThrough()
  // Progress is sampled, not reported per chunk: no work per chunk, and few events per layer.
  const { onProgress } = o
  let reported = 0
  const progress = onProgress
    ? setInterval(() => {
        if (fetched.size !== reported) onProgress((reported = fetched.size))
      }, PROGRESS_INTERVAL_MS).unref()
    : undefined
  // Errors anywhere in the chain reach `tar`, the consumer's stream.
  pipeline([blob, ...steps, tar])
    .finally(() => clearInterval(progress))
    .catch((err: unknown) =>
      tar.destroy(
        err instanceof CofferError
          ? err
          : new CofferError(
              'ERR_OCI_LAYER_INVALID',
              `layer ${desc.digest} cannot be read: ${(err as Error).message}`,
              { cause: err },
            ),
      ),
    )
  return tar
}

function decompressor(c: 'gzip' | 'zstd'): Transform {
  if (c === 'gzip') return zlib.createGunzip({ chunkSize: INFLATE_OUT })
  // Node 22.15+ has zstd in zlib; Node 20 does not, so a pure-JS streaming decoder fills in.
  const native = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress
  if (native) return native()
  return zstdTransform()
}

function zstdTransform(): Transform {
  let push: ((chunk: Uint8Array) => void) | undefined
  const decoder = new ZstdDecompress((chunk) => push?.(chunk))
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      push = (out) => this.push(Buffer.from(out))
      try {
        decoder.push(chunk)
        cb()
      } catch (err) {
        cb(new CofferError('ERR_OCI_LAYER_INVALID', `zstd stream is corrupt: ${(err as Error).message}`))
      }
    },
    flush(cb) {
      try {
        decoder.push(new Uint8Array(0), true)
        cb()
      } catch (err) {
        cb(new CofferError('ERR_OCI_LAYER_INVALID', `zstd stream is corrupt: ${(err as Error).message}`))
      }
    },
  })
}
