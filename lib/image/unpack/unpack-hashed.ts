import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream'
import { Digester } from '../../oci/digest.js'
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
  const digester = new Digester()
  const hashed = pipeline(
    tar,
    new Transform({
      transform(chunk: Buffer, _enc, cb: TransformCallback) {
        digester.update(chunk)
        cb(null, chunk)
      },
    }),
    () => undefined,
  )
  const result = await unpackLayer(hashed, dest, o)
  return { diffId: digester.digest(), result }
}
