import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { MiB } from '../util/limits.js'

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
 *
 * The first call also keeps freed buffer memory in the process (see `keepFreedMemoryMapped`).
 */
export function youngGenerationCollector(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    if (typeof gc !== 'function') return undefined
    const collect = (): void => (gc as (o: { type: string }) => void)({ type: 'minor' })
    keepFreedMemoryMapped(collect)
    return collect
  } catch {
    return undefined
  }
}

/**
 * The size of the block whose release raises glibc's thresholds: mmap 4 MiB, trim 8 MiB. A
 * collection frees a few MiB of buffers at once (every 2-4 MiB of layer), so 8 MiB keeps them
 * mapped for the next ones, at a cost of at most 8 MiB of free memory held per malloc arena.
 */
const THRESHOLD_BLOCK_BYTES = 4 * MiB

let kept = false

/**
 * Makes glibc's malloc keep the memory of freed buffers for the next ones instead of handing it
 * back to the kernel each time.
 *
 * Why: every collection above frees a few MiB of dead cipher and zlib buffers at once. They merge
 * into the top of the thread's malloc arena, which glibc trims (returns to the kernel) once it
 * exceeds M_TRIM_THRESHOLD, 128 KiB by default; the next buffers then fault those pages in again,
 * zeroed, one by one. On this project's VMs a fault costs microseconds, and a 512 MiB encrypt with
 * two workers took 36,000 of them (18,000 with the thresholds raised; wall time -0.2 to -0.3 s).
 *
 * How: glibc has no tunable a running process can set (GLIBC_TUNABLES is read at exec), but it
 * documents a dynamic rule (mallopt(3), M_MMAP_THRESHOLD): freeing an mmap'd chunk larger than
 * the current mmap threshold (and at most 32 MiB) raises that threshold to the chunk's size and
 * the trim threshold to twice that, for the whole process. One 4 MiB ArrayBuffer, allocated and
 * collected, is such a chunk. With another allocator (musl) this is a harmless 4 MiB allocation.
 */
function keepFreedMemoryMapped(collect: () => void): void {
  if (kept) return
  kept = true
  allocateAndDrop(THRESHOLD_BLOCK_BYTES)
  collect() // frees it (V8 frees a dead ArrayBuffer's memory when it collects the object)
}

/** A block that is garbage as soon as this returns. */
function allocateAndDrop(bytes: number): number {
  return new ArrayBuffer(bytes).byteLength
}
