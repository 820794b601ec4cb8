import { createHash } from 'node:crypto'
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream'
import type { UnpackOptions, UnpackResult } from './types.js'
import { unpackLayer } from './unpack-layer.js'

/**
 * Unpacks a layer tar into `dest` and hashes the exact bytes the unpacker read, trailing blocks
 * included (the tar is read to EOF), so the caller can check them against the layer's diff_id
 * before it commits anything. Errors of `tar` reach the unpacker.
 */
export async function unpackHashed(
  tar: Readable,
  dest: string,
  o: UnpackOptions,
): Promise<{ diffId: string; result: UnpackResult }> {
  const hasher = new HashingPassThrough()
  const hashed = pipeline(tar, hasher, () => undefined)
  const result = await unpackLayer(hashed, dest, o)
  return { diffId: `sha256:${hasher.hex()}`, result }
}

class HashingPassThrough extends Transform {
  private readonly hash = createHash('sha256')
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk)
    cb(null, chunk)
  }
  hex(): string {
    return this.hash.digest('hex')
  }
}
