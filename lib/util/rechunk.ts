import { Transform, type TransformCallback } from 'node:stream'

/**
 * Gathers small chunks into chunks of at least `bytes` (the last may be shorter). Every chunk
 * costs each stream stage downstream a fixed amount of work on the main thread (zlib's pass to the
 * libuv pool and back, a fresh output buffer: measured ~70 µs for gunzip), so feeding a
 * decompressor network-sized 64 KiB chunks spends more time in hand-offs than in inflating.
 */
export function rechunk(bytes: number): Transform {
  let pending: Buffer[] = []
  let size = 0
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      pending.push(chunk)
      size += chunk.length
      if (size < bytes) return cb()
      const out = Buffer.concat(pending, size)
      pending = []
      size = 0
      cb(null, out)
    },
    flush(cb: TransformCallback) {
      cb(null, size > 0 ? Buffer.concat(pending, size) : null)
    },
  })
}
