import { createReadStream } from 'node:fs'
import type { Digest } from '../oci/digest.js'
import type { TransformedLayer } from '../oci/layer-transform.js'
import type { Io } from '../util/io.js'
import type { LayerJob, LayerJobResult } from './layer-job.js'
import { layerJobRunner } from './layer-worker-pool.js'
import { createSpoolFile } from './spool.js'

/** Where a layer job's output went, as much of a TransformedLayer as the job itself can know. */
export type ParkedLayer = Omit<TransformedLayer, 'desc'>

/**
 * Runs one layer job on the worker pool, reading the source blob file and writing either the
 * destination's target file (the copy fsyncs and commits it) or, without one, a private spool.
 * On failure nothing is left behind in either place.
 */
export async function runLayerFileJob(
  crypto: Pick<LayerJob, 'op' | 'key' | 'nonce' | 'hmac' | 'plaintextDigest'>,
  source: { path: string; digest: Digest; size: number },
  target: string | undefined,
  io: Io,
): Promise<{ result: LayerJobResult; parked: ParkedLayer }> {
  const runner = layerJobRunner()
  if (target !== undefined) {
    const result = await runner.run({ ...crypto, source, target: { path: target } }, io)
    return {
      result,
      parked: {
        inTarget: true,
        // Only until the copy commits it; a committed target is the destination's blob.
        open: async (offset) => createReadStream(target, { start: offset, highWaterMark: 1 << 20 }),
        dispose: async () => {},
      },
    }
  }
  const spool = await createSpoolFile()
  try {
    const result = await runner.run({ ...crypto, source, target: { path: spool.path } }, io)
    const blob = spool.blob(result.digest, result.size)
    return { result, parked: { open: blob.open, dispose: blob.remove } }
  } catch (err) {
    await spool.remove()
    throw err
  }
}
