import { Transform, type TransformCallback } from 'node:stream'

/** A pass-through that reports the running byte count (starting at `start`) as data flows. */
export function countingStream(onBytes: (total: number) => void, start = 0): Transform {
  let total = start
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      total += chunk.length
      onBytes(total)
      cb(null, chunk)
    },
  })
}
