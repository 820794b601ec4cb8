import { availableParallelism } from 'node:os'
import type { Readable } from 'node:stream'
import { Worker } from 'node:worker_threads'
import { youngGenerationCollector } from '../../crypt/young-gc.js'
import { compiledWorkerExists, workerDiedError } from '../../util/worker-thread.js'
import { fromWire } from '../../util/wire-error.js'
import type { LayerChecks } from '../layer-checks.js'
import type { UnpackOptions, UnpackResult } from '../unpack/types.js'
import type { FromWorker, ToWorker } from './protocol.js'
import { StageJob } from './stage-layer.js'

/** Stages layers: `stageLayer`, on a worker thread when there is one. */
export interface LayerStager {
  /**
   * Reads `blob` to its end into the layer's checks and unpacks it into `dest`. `onBytes` hears
   * every chunk of the blob as it is taken from the network. When it rejects, nothing is writing
   * into `dest` any more; on an abort (`o.signal`) the thread is stopped.
   */
  stage(
    blob: Readable,
    checks: LayerChecks,
    dest: string,
    o: UnpackOptions & { onBytes?: (n: number) => void },
  ): Promise<{ diffId: string; result: UnpackResult }>
  /** Starts the threads now, so their start-up overlaps with the pull's own (manifests, keys). */
  prestart(): void
  /** Stops the threads (idle ones never keep the process alive, so this is for tests). */
  close(): Promise<void>
}

const WORKER_URL = new URL('./worker.js', import.meta.url)

let shared: LayerStager | undefined

/**
 * The process-wide stager: one worker thread per core, started on first use. Run from the
 * TypeScript sources (tests), the compiled worker does not exist and layers are staged on the
 * calling thread: same code, same checks, not in parallel.
 */
export function layerStager(): LayerStager {
  shared ??= compiledWorkerExists(WORKER_URL) ? createStageWorkerPool() : inThreadStager()
  return shared
}

export function inThreadStager(): LayerStager {
  return {
    async stage(blob, checks, dest, { onBytes, ...o }) {
      const job = new StageJob(checks, dest, o)
      try {
        for await (const chunk of blob as AsyncIterable<Buffer>) {
          onBytes?.(chunk.length)
          await job.write(chunk)
          if (job.stopped) break // a failed check: the rest of the blob is not needed
        }
        job.end()
      } catch (err) {
        job.fail(err as Error)
        await job.done.catch(() => undefined)
        throw err
      }
      return job.done
    },
    prestart: () => {},
    close: async () => {},
  }
}

/**
 * The network's chunks (64 KiB each) are sent to the worker in messages of about this many bytes:
 * few enough hand-offs between threads, which are dear on a virtual machine.
 */
const BATCH_BYTES = 256 * 1024
/** Bytes sent to a worker and not yet taken by its chain before the network read pauses. */
const IN_FLIGHT_BYTES = 4 * BATCH_BYTES
/** Blob bytes between two young-generation collections of this thread. */
const COLLECT_EVERY_BYTES = 4 << 20

interface Slot {
  readonly worker: Worker
  busy: boolean
  /** Messages of the slot's running job. */
  onMessage: ((m: FromWorker) => void) | undefined
  /** Called when the thread exits, with the reason. */
  onExit: ((err: Error) => void) | undefined
  crash: Error | undefined
}

/** At most `size` threads, one layer each; more layers wait their turn. Idle threads are unref'd. */
export function createStageWorkerPool(o: { size?: number; workerUrl?: URL } = {}): LayerStager {
  const size = Math.max(1, o.size ?? availableParallelism())
  const url = o.workerUrl ?? WORKER_URL
  const slots = new Set<Slot>()
  const waiting: Array<(slot: Slot) => void> = []
  let nextJob = 1
  // The network's read buffers, copied into chunks, are garbage at once; freed only when V8
  // collects, they would pile up by the tens of MiB (see young-gc.ts).
  const collect = youngGenerationCollector()
  let sinceCollect = 0

  function spawn(): Slot {
    // A small young generation: the chain's garbage is buffers, collected sooner and kept fewer.
    const worker = new Worker(url, { resourceLimits: { maxYoungGenerationSizeMb: 8 } })
    const slot: Slot = { worker, busy: false, onMessage: undefined, onExit: undefined, crash: undefined }
    worker.on('message', (m: FromWorker) => slot.onMessage?.(m))
    worker.on('error', (err) => {
      slot.crash = err
    })
    worker.on('exit', (code) => {
      slots.delete(slot)
      slot.onExit?.(workerDiedError('ERR_IMAGE_WORKER_FAILED', slot.crash, code))
      hand()
    })
    worker.unref()
    slots.add(slot)
    return slot
  }

  /** Gives free (or new) threads to waiting layers. */
  function hand(): void {
    while (waiting.length > 0) {
      let slot = [...slots].find((s) => !s.busy)
      if (!slot) {
        if (slots.size >= size) return
        slot = spawn()
      }
      slot.busy = true
      slot.worker.ref()
      waiting.shift()!(slot)
    }
  }

  function acquire(signal?: AbortSignal): Promise<Slot> {
    return new Promise((resolve, reject) => {
      const take = (slot: Slot): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve(slot)
      }
      const onAbort = (): void => {
        const i = waiting.indexOf(take)
        if (i >= 0) waiting.splice(i, 1)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      waiting.push(take)
      hand()
    })
  }

  function release(slot: Slot): void {
    slot.onMessage = undefined
    slot.onExit = undefined
    slot.busy = false
    slot.worker.unref()
    hand()
  }

  async function stage(
    blob: Readable,
    checks: LayerChecks,
    dest: string,
    { onBytes, signal, onWarning, ...options }: UnpackOptions & { onBytes?: (n: number) => void },
  ): Promise<{ diffId: string; result: UnpackResult }> {
    signal?.throwIfAborted()
    const slot = await acquire(signal)
    const job = nextJob++
    const post = (m: ToWorker, transfer?: ArrayBuffer[]): void => slot.worker.postMessage(m, transfer)
    try {
      return await new Promise((resolve, reject) => {
        let inFlight = 0
        /** Buffers gathered for the next message, and their bytes. */
        let batch: ArrayBuffer[] = []
        let batched = 0
        /** Set when the blob failed: the worker's answer is awaited, then this is the rejection. */
        let blobError: Error | undefined
        let settled = false
        const settle = (fn: () => void): void => {
          if (settled) return
          settled = true
          signal?.removeEventListener('abort', onAbort)
          blob.off('data', onData).off('end', onEnd).off('error', onError)
          fn()
        }
        const flush = (): void => {
          if (batched === 0) return
          inFlight += batched
          post({ type: 'data', job, chunks: batch }, batch)
          batch = []
          batched = 0
        }
        const onData = (chunk: Buffer): void => {
          onBytes?.(chunk.length)
          if ((sinceCollect += chunk.length) >= COLLECT_EVERY_BYTES && collect) {
            sinceCollect = 0
            collect()
          }
          batch.push(ownBuffer(chunk))
          batched += chunk.length
          if (batched >= BATCH_BYTES) flush()
          if (inFlight > IN_FLIGHT_BYTES) blob.pause()
        }
        const onEnd = (): void => {
          flush()
          post({ type: 'end', job })
        }
        const onError = (err: Error): void => {
          blobError = err
          post({ type: 'fail', job, message: err.message })
        }
        const onAbort = (): void => {
          // The thread may be inside a synchronous step: only stopping it stops it. Its exit settles.
          blobError = signal?.reason as Error
          blob.destroy()
          void slot.worker.terminate()
        }
        slot.onMessage = (m) => {
          if (m.job !== job) return
          if (m.type === 'ack') {
            inFlight -= m.bytes
            if (inFlight <= IN_FLIGHT_BYTES && blob.isPaused()) blob.resume()
          } else if (m.type === 'warning') onWarning?.(m.warning)
          else if (m.type === 'done') settle(() => resolve({ diffId: m.diffId, result: m.result }))
          else
            settle(() => {
              blob.destroy()
              reject(blobError ?? fromWire(m.error))
            })
        }
        slot.onExit = (err) =>
          settle(() => {
            blob.destroy()
            reject(blobError ?? err)
          })
        signal?.addEventListener('abort', onAbort, { once: true })
        post({ type: 'start', job, checks, dest, options })
        blob.on('data', onData).on('end', onEnd).on('error', onError)
      })
    } finally {
      if (slots.has(slot)) release(slot)
    }
  }

  return {
    stage,
    prestart() {
      while (slots.size < size) spawn()
    },
    async close() {
      await Promise.all([...slots].map((s) => s.worker.terminate()))
    },
  }
}

/**
 * The chunk's memory, to transfer to the worker. Node's HTTP body chunks each own their
 * ArrayBuffer, which the blob stream hands on and forgets: moving it costs nothing and copies
 * nothing. A chunk that shares its memory (a slice, as after a resumed download) is copied.
 */
function ownBuffer(chunk: Buffer): ArrayBuffer {
  const ab = chunk.buffer
  if (ab instanceof ArrayBuffer && chunk.byteOffset === 0 && chunk.byteLength === ab.byteLength) return ab
  const copy = new ArrayBuffer(chunk.byteLength)
  new Uint8Array(copy).set(chunk)
  return copy
}
