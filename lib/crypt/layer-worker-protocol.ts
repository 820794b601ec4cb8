import type { WireError } from '../util/wire-error.js'
import type { LayerJob, LayerJobResult } from './layer-job.js'

/** Main thread → layer worker: one job at a time. */
export interface JobRequest {
  readonly id: number
  readonly job: LayerJob
}

/** Layer worker → main thread: the outcome of the job with the same id. */
export type JobReply =
  | { readonly id: number; readonly ok: true; readonly result: LayerJobResult }
  | { readonly id: number; readonly ok: false; readonly error: WireError }
