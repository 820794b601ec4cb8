import { rm } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { CofferError } from '../util/errors.js'
import { compiledWorkerExists, workerDiedError } from '../util/worker-thread.js'
import type { Io } from '../util/io.js'
import { runLayerJob, type LayerJob, type LayerJobResult } from './layer-job.js'
import { fromWire } from '../util/wire-error.js'
import type { JobReply, JobRequest } from './layer-worker-protocol.js'

/** Runs layer jobs; on any failure the job's target file is gone when the promise rejects. */
export interface LayerJobRunner {
  run(job: LayerJob, o?: Io): Promise<LayerJobResult>
  /**
   * Starts the threads now, so their start-up (tens of ms each) overlaps with the caller's own
   * (loading key wrappers, reading manifests) instead of delaying the first layer.
   */
  prestart(): void
  /** Stops the threads (idle ones never keep the process alive, so this is for tests). */
  close(): Promise<void>
}

const WORKER_URL = new URL('./layer-worker.js', import.meta.url)

let shared: LayerJobRunner | undefined

/**
 * The process-wide runner: a pool of `availableParallelism()` worker threads, started on first
 * use, so a copy without crypto never pays for one. Run from the TypeScript sources (tests), the
 * compiled worker file does not exist and the jobs run on the calling thread instead: same code,
 * same results, just not in parallel.
 */
export function layerJobRunner(): LayerJobRunner {
  shared ??= compiledWorkerExists(WORKER_URL) ? createLayerWorkerPool() : inThreadRunner()
  return shared
}

/** Jobs on the calling thread (the fallback, and the reference the worker path is tested against). */
export function inThreadRunner(): LayerJobRunner {
  return {
    run: (job, o = {}) => runLayerJob(job, o.signal ? { signal: o.signal } : {}),
    prestart: () => {},
    close: async () => {},
  }
}

interface Task {
  readonly job: LayerJob
  readonly signal: AbortSignal | undefined
  /** This task's abort listener (one per task: a copy shares one signal between its layers). */
  readonly onAbort: () => void
  resolve(result: LayerJobResult): void
  reject(err: unknown): void
}

interface Slot {
  readonly worker: Worker
  task: Task | undefined
  /** The last 'error' the thread raised, reported when it exits. */
  crash: Error | undefined
}

/**
 * One layer per thread, at most `size` threads; further jobs wait in a queue, so memory stays
 * bounded (two 1 MiB chunks per running job). A thread that dies or is terminated mid-job fails
 * that job with ERR_CRYPT_WORKER_FAILED (or the abort reason) after its target file is removed,
 * and is replaced on demand. Idle threads are unref'd.
 */
export function createLayerWorkerPool(o: { size?: number; workerUrl?: URL } = {}): LayerJobRunner {
  const size = Math.max(1, o.size ?? availableParallelism())
  const url = o.workerUrl ?? WORKER_URL
  const slots = new Set<Slot>()
  const queue: Task[] = []
  let nextId = 1

  function spawn(): Slot {
    const slot: Slot = { worker: new Worker(url), task: undefined, crash: undefined }
    slot.worker.on('message', (reply: JobReply) => {
      const task = slot.task
      if (!task) return
      settle(slot)
      if (reply.ok) task.resolve(reply.result)
      else task.reject(fromWire(reply.error))
    })
    slot.worker.on('error', (err) => {
      slot.crash = err
    })
    slot.worker.on('exit', (code) => {
      slots.delete(slot)
      const task = slot.task
      if (task) {
        slot.task = undefined
        task.signal?.removeEventListener('abort', task.onAbort)
        const err = task.signal?.aborted
          ? task.signal.reason
          : workerDiedError('ERR_CRYPT_WORKER_FAILED', slot.crash, code)
        rm(task.job.target.path, { force: true }).then(
          () => task.reject(err),
          () => task.reject(err),
        )
      }
      dispatch()
    })
    slots.add(slot)
    return slot
  }

  function settle(slot: Slot): void {
    slot.task?.signal?.removeEventListener('abort', slot.task.onAbort)
    slot.task = undefined
    slot.worker.unref()
    dispatch()
  }

  function abort(task: Task): void {
    const queued = queue.indexOf(task)
    if (queued >= 0) {
      queue.splice(queued, 1)
      task.reject(task.signal?.reason)
      return
    }
    // The thread may be in the middle of a synchronous crypto call: only terminating it stops it.
    // Its 'exit' removes the target file and rejects the task.
    for (const slot of slots) if (slot.task === task) void slot.worker.terminate()
  }

  function dispatch(): void {
    while (queue.length > 0) {
      let slot = [...slots].find((s) => !s.task)
      if (!slot) {
        if (slots.size >= size) return
        slot = spawn()
      }
      const task = queue.shift()!
      slot.task = task
      slot.worker.ref()
      slot.worker.postMessage({ id: nextId++, job: task.job } satisfies JobRequest)
    }
  }

  return {
    run(job, io = {}) {
      io.signal?.throwIfAborted()
      return new Promise<LayerJobResult>((resolve, reject) => {
        const task: Task = { job, signal: io.signal, onAbort: () => abort(task), resolve, reject }
        io.signal?.addEventListener('abort', task.onAbort, { once: true })
        queue.push(task)
        dispatch()
      })
    },
    prestart() {
      while (slots.size < size) spawn().worker.unref()
    },
    async close() {
      for (const task of queue.splice(0)) {
        task.signal?.removeEventListener('abort', task.onAbort)
        task.reject(new CofferError('ERR_CANCELED', 'the layer worker pool was closed'))
      }
      await Promise.all([...slots].map((s) => s.worker.terminate()))
    },
  }
}
