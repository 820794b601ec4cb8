/**
 * Entry point of a layer stage worker thread (started by stage-runner.ts). It runs one layer at a
 * time: the blob arrives in transferred chunks and goes through the layer's checks into the
 * unpacker (`StageJob`), on this thread's own event loop, so the layers of a pull use as many
 * cores as there are workers while the main thread only moves bytes off the network.
 */
import { parentPort } from 'node:worker_threads'
import { youngGenerationCollector } from '../../crypt/young-gc.js'
import { toWire } from '../../util/wire-error.js'
import type { FromWorker, ToWorker } from './protocol.js'
import { StageJob } from './stage-layer.js'

const port = parentPort
if (!port) throw new Error('stage-worker/worker.js runs only as a worker thread')
const send = (m: FromWorker): void => port.postMessage(m)
/**
 * The cipher and zlib hand back a new buffer per slice, freed only when V8 collects its object;
 * V8 collects by heap pressure, which these small objects barely create, so dead buffers would
 * pile up by the tens of MiB per thread. A young-generation collection every 2 MiB of blob frees
 * them (measured on a 512 MiB pull: peak RSS 130-139 MiB; every 4 MiB, 143-158 MiB; same speed).
 */
const collect = youngGenerationCollector()
const COLLECT_EVERY_BYTES = 2 << 20
let sinceCollect = 0

/** The running job and its queue: chunks are written one after the other, each after the last. */
let current: { id: number; job: StageJob; queue: Promise<void> } | undefined

port.on('message', (m: ToWorker) => {
  if (m.type === 'start') {
    const job = new StageJob(m.checks, m.dest, {
      ...m.options,
      // This thread has nothing else to do: writing in place beats a hop to the I/O pool and back.
      blockingWrites: true,
      onWarning: (warning) => send({ type: 'warning', job: m.job, warning }),
    })
    current = { id: m.job, job, queue: Promise.resolve() }
    job.done
      .then(
        ({ diffId, result }) => send({ type: 'done', job: m.job, diffId, result }),
        (err: unknown) => send({ type: 'error', job: m.job, error: toWire(err) }),
      )
      .finally(() => {
        if (current?.id === m.job) current = undefined
      })
    return
  }
  const c = current
  if (c?.id !== m.job) return // a job that already ended: its late chunks are dropped
  if (m.type === 'data') {
    c.queue = c.queue
      .then(async () => {
        for (const chunk of m.chunks) await c.job.write(new Uint8Array(chunk))
      })
      .then(() => {
        const bytes = m.chunks.reduce((n, b) => n + b.byteLength, 0)
        send({ type: 'ack', job: m.job, bytes })
        if ((sinceCollect += bytes) >= COLLECT_EVERY_BYTES && collect) {
          sinceCollect = 0
          collect()
        }
      })
  } else if (m.type === 'end') c.queue = c.queue.then(() => c.job.end())
  else c.queue = c.queue.then(() => c.job.fail(new Error(m.message)))
})
