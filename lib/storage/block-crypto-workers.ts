import { constants as osConstants } from 'node:os'
import { Worker } from 'node:worker_threads'
import { CofferError } from '../util/errors.js'
import { compiledWorkerExists } from '../util/worker-thread.js'
import { type BlockCrypto } from './block-crypto.js'
import { nativeGcm } from './native-gcm.js'
import {
  DONE,
  ERRNO,
  FD,
  FIRST_HI,
  FIRST_LO,
  IDLE,
  IN_LEN,
  JOB,
  OP,
  OP_DECRYPT,
  OP_ENCRYPT,
  OP_ENCRYPT_WRITE,
  POS_HI,
  POS_LO,
  READY,
  RESULT,
  RESULT_CORRUPT,
  SLOT_BLOCKS,
  STATE,
  STOP,
  newSlotMemory,
  slotView,
  type Slot,
} from './block-crypto-slot.js'
import {
  CIPHER_BS,
  CORRUPT_BLOCK,
  PLAIN_BS,
  decryptBlocks,
  encryptBlocks,
  plainLength,
} from './content-cipher.js'

/**
 * AES-GCM of large requests split over worker threads. gocryptfs encrypts the blocks of a 128 KiB
 * FUSE write on two goroutines; here every request ran on the one JS thread. The kernel sends the
 * writes of one file one at a time, so the gain has to come from inside a request: its blocks are
 * cut into runs, one per worker plus one that this thread does itself, and this thread then
 * sleeps on the workers' slots (Atomics.wait) until they are done. Waiting synchronously is what
 * makes it pay: the hand-over is a futex wake each way (~15 µs), where an async wait goes through
 * the event loop (~40 µs) and a message port three times that, against ~100 µs of AES-GCM per
 * worker share. Requests under MIN_SPLIT_BLOCKS (random 4 KiB I/O) stay inline.
 *
 * Write-behind (`writeBehind`) is the one job that does not wait: the FUSE thread copies a big
 * write into a worker's slot and answers the kernel, and the worker encrypts and writes it while
 * the next request comes in. Everything else first settles that job.
 */
export const MIN_SPLIT_BLOCKS = 8
/**
 * With the native AES-GCM (native-gcm.ts) a whole 128 KiB request takes ~65 µs on this thread,
 * less than handing shares to workers and waking up again costs: requests are then never split
 * (measured: sequential read 400-530 MiB/s inline against 290-370 split). The workers still do
 * the write-behind, which overlaps a write's encryption and pwrite with the next request.
 */
const DEFAULT_SPLIT_BLOCKS = nativeGcm ? Infinity : MIN_SPLIT_BLOCKS
/** A worker that takes this long for ≤ 128 KiB is gone: give up on the pool, never hang. */
const JOB_TIMEOUT_MS = 10_000

type Op = typeof OP_ENCRYPT | typeof OP_DECRYPT | typeof OP_ENCRYPT_WRITE

interface PoolWorker {
  readonly thread: Worker
  readonly slot: Slot
}

/** The error a failed backing-file write reports (errnoOf maps its code to the FUSE answer). */
function errnoError(errno: number): Error {
  const code = Object.entries(osConstants.errno).find(([, n]) => n === errno)?.[0] ?? 'EIO'
  return Object.assign(new Error(`write-behind: ${code}`), { code })
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.length)
}

/** The compiled worker; absent when running from the TypeScript sources (tests): then inline. */
const WORKER_URL = new URL('./block-crypto-worker.js', import.meta.url)

/**
 * A pool of `count` worker threads, each with its own copy of `key`; `key` itself is used for the
 * share done on this thread (the volume wipes it at close). Inline only if the worker script is
 * missing or a worker stopped answering.
 */
export function workerBlockCrypto(
  key: Uint8Array,
  count: number,
  o: {
    /** Requests of at least this many blocks are split over the workers (tests set it). */
    splitBlocks?: number
  } = {},
): BlockCrypto {
  const splitAt = o.splitBlocks ?? DEFAULT_SPLIT_BLOCKS
  const workers: PoolWorker[] = []
  let broken = count < 1 || !compiledWorkerExists(WORKER_URL)
  if (!broken)
    for (let i = 0; i < count; i++) {
      const slot = newSlotMemory()
      const thread = new Worker(WORKER_URL, { workerData: { key: new Uint8Array(key), slot } })
      thread.unref() // an idle pool never keeps the process alive
      thread.on('error', () => (broken = true))
      thread.on('exit', () => (broken = true))
      workers.push({ thread, slot: slotView(slot) })
    }

  const start = (
    w: PoolWorker,
    op: Op,
    input: Uint8Array,
    first: number,
    fileId: Uint8Array,
    fd = 0,
    position = 0,
  ): void => {
    const { ctl } = w.slot
    // Buffer#copy is a memcpy; TypedArray#set into shared memory may go byte by byte.
    asBuffer(input).copy(w.slot.input)
    asBuffer(fileId).copy(w.slot.fileId)
    ctl[OP] = op
    ctl[IN_LEN] = input.length
    ctl[FIRST_HI] = Math.floor(first / 2 ** 32)
    ctl[FIRST_LO] = first >>> 0
    ctl[FD] = fd
    ctl[POS_HI] = Math.floor(position / 2 ** 32)
    ctl[POS_LO] = position >>> 0
    Atomics.store(ctl, STATE, JOB)
    Atomics.notify(ctl, STATE)
  }

  /**
   * Waits for `w`'s job; its output length. The slot is idle again afterwards. A write-behind job
   * waits as long as the disk takes (as writeSync on this thread would), a crypto job 10 s at most.
   */
  const finish = (w: PoolWorker, timeoutMs = JOB_TIMEOUT_MS): number => {
    const { ctl } = w.slot
    const deadline = Date.now() + timeoutMs
    // A loop: the worker's wake-up call for the previous job can arrive after this one started.
    while (Atomics.load(ctl, STATE) === JOB) {
      const left = timeoutMs === Infinity ? Infinity : deadline - Date.now()
      if (left <= 0 || Atomics.wait(ctl, STATE, JOB, left) === 'timed-out') {
        broken = true
        throw new CofferError('ERR_INTERNAL', 'block crypto worker does not answer')
      }
    }
    if (Atomics.compareExchange(ctl, STATE, DONE, IDLE) !== DONE)
      throw new CofferError('ERR_INTERNAL', 'block crypto closed')
    return ctl[RESULT]!
  }

  /** The write-behind job in flight (at most one, so writes reach the disk in their order). */
  let behind: { w: PoolWorker; onError: (err: Error) => void } | undefined

  const settle = (): void => {
    if (!behind) return
    const { w, onError } = behind
    behind = undefined
    let err: Error | undefined
    try {
      const n = finish(w, Infinity)
      if (n === RESULT_CORRUPT) err = new CofferError('ERR_INTERNAL', 'block crypto worker failed')
      else if (n < 0) err = errnoError(w.slot.ctl[ERRNO]!)
    } catch (e) {
      err = e instanceof Error ? e : new Error(String(e))
    }
    if (err) onError(err)
  }

  const writeBehind: NonNullable<BlockCrypto['writeBehind']> = (
    plain,
    first,
    fileId,
    fd,
    position,
    onError,
  ) => {
    settle()
    const w = broken ? undefined : workers.find((x) => Atomics.load(x.slot.ctl, READY) === 1)
    if (!w || plain.length > SLOT_BLOCKS * PLAIN_BS) return false
    start(w, OP_ENCRYPT_WRITE, plain, first, fileId, fd, position)
    behind = { w, onError }
    return true
  }

  const run = (op: Op, input: Uint8Array, firstBlockNo: number, fileId: Uint8Array, into?: Buffer) => {
    settle()
    const unit = op === OP_ENCRYPT ? PLAIN_BS : CIPHER_BS
    const inline = (part: Uint8Array, first: number, to?: Buffer): Buffer =>
      op === OP_ENCRYPT
        ? encryptBlocks(key, part, first, fileId, to)
        : decryptBlocks(key, part, first, fileId, to)
    const blocks = Math.ceil(input.length / unit)
    if (blocks < splitAt) return inline(input, firstBlockNo, into) // random 4 KiB I/O
    // Workers still starting up are skipped, so the first requests after mount never wait on them.
    const ready = broken ? [] : workers.filter((w) => Atomics.load(w.slot.ctl, READY) === 1)
    const helpers = broken ? 0 : Math.min(ready.length, Math.floor(blocks / (MIN_SPLIT_BLOCKS / 2)) - 1)
    if (helpers <= 0) return inline(input, firstBlockNo, into)
    const per = Math.min(SLOT_BLOCKS, Math.ceil(blocks / (helpers + 1)))
    const outLength =
      op === OP_ENCRYPT ? input.length + blocks * (CIPHER_BS - PLAIN_BS) : plainLength(input.length)
    if (into && into.length < outLength)
      throw new CofferError('ERR_INTERNAL', 'block output buffer too small')
    const out = into ? into.subarray(0, outLength) : Buffer.allocUnsafe(outLength)
    const outUnit = op === OP_ENCRYPT ? CIPHER_BS : PLAIN_BS
    const used = ready.slice(0, helpers)
    used.forEach((w, i) =>
      start(w, op, input.subarray(i * per * unit, (i + 1) * per * unit), firstBlockNo + i * per, fileId),
    )
    const mine = helpers * per
    let failure: unknown
    try {
      inline(input.subarray(mine * unit), firstBlockNo + mine, out.subarray(mine * outUnit))
    } catch (err) {
      failure = err
    }
    // Every started job is collected, even after a failure, so each slot is idle for the next.
    used.forEach((w, i) => {
      try {
        const n = finish(w)
        if (n === RESULT_CORRUPT) throw new CofferError('ERR_STORAGE_CORRUPT', CORRUPT_BLOCK)
        if (n < 0) throw new CofferError('ERR_INTERNAL', 'block crypto worker failed')
        w.slot.output.copy(out, i * per * outUnit, 0, n)
      } catch (err) {
        failure ??= err
      }
    })
    if (failure !== undefined) throw failure
    return out
  }

  return {
    encryptSync: (plain, first, fileId, into) => run(OP_ENCRYPT, plain, first, fileId, into),
    decryptSync: (stored, first, fileId, into) => run(OP_DECRYPT, stored, first, fileId, into),
    encrypt: async (plain, first, fileId, into) => run(OP_ENCRYPT, plain, first, fileId, into),
    decrypt: async (stored, first, fileId, into) => run(OP_DECRYPT, stored, first, fileId, into),
    writeBehind,
    settle,
    pending: () => behind !== undefined,
    close: () => {
      settle()
      broken = true
      for (const w of workers) {
        Atomics.store(w.slot.ctl, STATE, STOP)
        Atomics.notify(w.slot.ctl, STATE)
      }
    },
  }
}
