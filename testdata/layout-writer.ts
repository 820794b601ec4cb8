/**
 * Writes OCI image layout pieces with Node and tar-stream alone, without coffer's layout store, so
 * the tests and the benchmark can check coffer against images coffer did not produce. Layers are
 * streamed (tar → diff_id hash → gzip → digest hash → temp file → rename by digest); no layer is
 * held in memory, so the 512 MiB benchmark image is made the same way as a 4 KiB test image.
 */
import { createCipheriv, createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable, Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { pack } from 'tar-stream'

/** A fixed mtime keeps layers byte-identical across runs (2020-01-01T00:00:00Z). */
export const EPOCH = new Date(Date.UTC(2020, 0, 1))
export const MEDIA_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
const CHUNK = 1024 * 1024

export interface WrittenBlob {
  mediaType: string
  digest: string
  size: number
}

/** One entry of a generated layer: a directory, a small file, or `size` bytes from a stream. */
export type LayerEntry =
  | { name: string; type: 'directory' }
  | { name: string; content: string | Buffer }
  | { name: string; size: number; stream: Readable }

/**
 * `length` deterministic, incompressible bytes from a string seed: an AES-128-CTR keystream
 * (hardware AES, GB/s), keyed by the seed's SHA-256. Not for secrets; only for test content.
 */
export function keystream(seed: string, length: number): Readable {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  const zeros = Buffer.alloc(CHUNK)
  let left = length
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (left === 0) return void this.push(null)
      const n = Math.min(left, CHUNK)
      left -= n
      this.push(cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n)))
    },
  })
}

/**
 * Streams `entries` as a gzip'd tar into `dir/blobs/sha256/<digest>` and returns its descriptor
 * with `diffId` (the uncompressed tar's digest, for the config's rootfs.diff_ids).
 */
export async function writeTarGzLayer(
  dir: string,
  entries: LayerEntry[],
  o: { gzipLevel?: number } = {},
): Promise<WrittenBlob & { diffId: string }> {
  const tar = pack()
  const header = { uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: EPOCH }
  const tmp = join(dir, 'blobs', `.tmp-layer-${randomBytes(6).toString('hex')}`)
  const diffId = new HashPass()
  const digest = new HashPass()
  const fill = async (): Promise<void> => {
    for (const e of entries) {
      if ('type' in e) tar.entry({ ...header, name: e.name, type: 'directory', mode: 0o755 })
      else if ('content' in e) tar.entry({ ...header, name: e.name, mode: 0o644 }, e.content)
      else await pipeline(e.stream, tar.entry({ ...header, name: e.name, mode: 0o644, size: e.size }))
    }
    tar.finalize()
  }
  try {
    await Promise.all([
      fill(),
      pipeline(
        tar,
        diffId,
        createGzip({ level: o.gzipLevel ?? 6, chunkSize: 256 * 1024 }),
        digest,
        createWriteStream(tmp),
      ),
    ])
    const hex = digest.hex()
    await rename(tmp, join(dir, 'blobs', 'sha256', hex))
    return {
      mediaType: MEDIA_LAYER_GZIP,
      digest: `sha256:${hex}`,
      size: digest.size,
      diffId: `sha256:${diffId.hex()}`,
    }
  } finally {
    await rm(tmp, { force: true })
  }
}

/** Writes `value` as a JSON blob and returns its descriptor. */
export async function writeJsonBlob(dir: string, mediaType: string, value: unknown): Promise<WrittenBlob> {
  const bytes = Buffer.from(JSON.stringify(value))
  const hex = createHash('sha256').update(bytes).digest('hex')
  await writeFile(join(dir, 'blobs', 'sha256', hex), bytes)
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length }
}

/** Passes bytes through unchanged while hashing and counting them. */
class HashPass extends Transform {
  readonly #hash = createHash('sha256')
  size = 0
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk)
    this.size += chunk.length
    cb(null, chunk)
  }
  hex(): string {
    return this.#hash.copy().digest('hex')
  }
}
