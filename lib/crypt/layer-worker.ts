/**
 * Entry point of a layer worker thread (started by layer-worker-pool.ts): runs the layer jobs it
 * is sent, one at a time, and answers each with its result or its error.
 */
import { parentPort } from 'node:worker_threads'
import { runLayerJob } from './layer-job.js'
import { youngGenerationCollector } from './young-gc.js'
import { toWire } from '../util/wire-error.js'
import type { JobReply, JobRequest } from './layer-worker-protocol.js'

const port = parentPort
if (!port) throw new Error('layer-worker.js runs only as a worker thread')
const collect = youngGenerationCollector()
port.on('message', (req: JobRequest) => {
  runLayerJob(req.job, collect ? { collect } : {}).then(
    (result) => port.postMessage({ id: req.id, ok: true, result } satisfies JobReply),
    (err: unknown) => port.postMessage({ id: req.id, ok: false, error: toWire(err) } satisfies JobReply),
  )
})
