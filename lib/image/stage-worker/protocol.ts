/**
 * Messages between the pull (main thread) and a layer stage worker. Every message names its job,
 * so data still in flight for a job the worker already ended (it failed early) is recognised and
 * dropped.
 */
import type { WireError } from '../../util/wire-error.js'
import type { UnpackResult, UnpackWarning } from '../unpack/types.js'
import type { LayerChecks } from '../layer-checks.js'
import type { PortableUnpackOptions } from './stage-layer.js'

export type ToWorker =
  | {
      readonly type: 'start'
      readonly job: number
      readonly checks: LayerChecks
      readonly dest: string
      readonly options: PortableUnpackOptions
    }
  /** The next bytes of the blob, in order (transferred, not copied). */
  | { readonly type: 'data'; readonly job: number; readonly chunks: ArrayBuffer[] }
  | { readonly type: 'end'; readonly job: number }
  /** The blob could not be fetched: stop, and answer with an error once nothing is being written. */
  | { readonly type: 'fail'; readonly job: number; readonly message: string }

export type FromWorker =
  /** The worker took `bytes` more of the blob through its checks. */
  | { readonly type: 'ack'; readonly job: number; readonly bytes: number }
  | { readonly type: 'warning'; readonly job: number; readonly warning: UnpackWarning }
  | { readonly type: 'done'; readonly job: number; readonly diffId: string; readonly result: UnpackResult }
  | { readonly type: 'error'; readonly job: number; readonly error: WireError }
