import { writeSync } from 'node:fs'
import { workerData } from 'node:worker_threads'
import { CofferError } from '../util/errors.js'
import {
  DONE,
  ERRNO,
  FD,
  FIRST_HI,
  FIRST_LO,
  JOB,
  IN_LEN,
  OP,
  OP_DECRYPT,
  OP_ENCRYPT_WRITE,
  POS_HI,
  POS_LO,
  READY,
  RESULT,
  RESULT_CORRUPT,
  RESULT_ERROR,
  STATE,
  STOP,
  slotView,
} from './block-crypto-slot.js'
import { decryptBlocks, encryptBlocks } from './content-cipher.js'
import { errnoNumberOf } from './posix-error.js'

/**
 * One thread of the block-crypto pool (block-crypto-workers.ts). It sleeps on its slot's STATE word,
 * runs the job it is handed (block-crypto-slot.ts) and wakes the FUSE thread. It keeps its own copy
 * of the content key and wipes it when told to stop. A write-behind job also writes the stored
 * blocks to the backing file (descriptors are shared by the threads of a process); the FUSE thread
 * keeps that descriptor open until it has collected the job.
 */
const init = workerData as { key: Uint8Array; slot: SharedArrayBuffer }
const key = Buffer.from(init.key)
init.key.fill(0)
const slot = slotView(init.slot)
const { ctl } = slot
Atomics.store(ctl, READY, 1)

for (;;) {
  const state = Atomics.load(ctl, STATE)
  if (state === STOP) break
  if (state !== JOB) {
    Atomics.wait(ctl, STATE, state) // IDLE, or DONE until the result is collected
    continue
  }
  const input = slot.input.subarray(0, ctl[IN_LEN]!)
  const first = ctl[FIRST_HI]! * 2 ** 32 + (ctl[FIRST_LO]! >>> 0)
  ctl[ERRNO] = 0
  try {
    const op = ctl[OP]
    const out =
      op === OP_DECRYPT
        ? decryptBlocks(key, input, first, slot.fileId, slot.output)
        : encryptBlocks(key, input, first, slot.fileId, slot.output)
    if (op === OP_ENCRYPT_WRITE) {
      const fd = ctl[FD]!
      const position = ctl[POS_HI]! * 2 ** 32 + (ctl[POS_LO]! >>> 0)
      for (let done = 0; done < out.length;)
        done += writeSync(fd, out, done, out.length - done, position + done)
    }
    ctl[RESULT] = out.length
  } catch (err) {
    const corrupt = err instanceof CofferError && err.code === 'ERR_STORAGE_CORRUPT'
    if (!corrupt) ctl[ERRNO] = errnoNumberOf(err)
    ctl[RESULT] = corrupt ? RESULT_CORRUPT : RESULT_ERROR
  }
  Atomics.compareExchange(ctl, STATE, JOB, DONE) // never over a STOP that came meanwhile
  Atomics.notify(ctl, STATE)
}
key.fill(0)
