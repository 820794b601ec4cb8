import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * A young-generation collection on demand, for a layer worker thread.
 *
 * Why: node:crypto returns a fresh Buffer for every cipher update, and its memory (malloc'd,
 * outside the JS heap) is freed only when V8 collects the Buffer object. V8 collects by JS heap
 * pressure, which these tiny objects barely create, so each thread let 30-60 MiB of dead buffers
 * pile up (measured: peak RSS 186 MiB for a 512 MiB encrypt with two workers; 132 MiB with a
 * scavenge every 4 MiB, which costs well under a millisecond each).
 *
 * `--expose-gc` set at run time applies only to contexts created afterwards, such as the one
 * made here; nothing else in the process changes. Undefined if V8 refuses.
 */
export function youngGenerationCollector(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    if (typeof gc !== 'function') return undefined
    return () => (gc as (o: { type: string }) => void)({ type: 'minor' })
  } catch {
    return undefined
  }
}
