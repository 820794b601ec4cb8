import { workerData } from 'node:worker_threads'
import { CofferError } from '../util/errors.js'
import {
  DONE,
  FIRST_HI,
  FIRST_LO,
  JOB,
  IN_LEN,
  OP,
  OP_ENCRYPT,
  READY,
  RESULT,
  RESULT_CORRUPT,
  RESULT_ERROR,
  STATE,
  STOP,
  slotView,
} from './block-crypto-slot.js'
import { decryptBlocks, encryptBlocks } from './content-cipher.js'

/**
 * One thread of the block-crypto pool (block-crypto-workers.ts). It sleeps on its slot's STATE word,
 * runs the job it is handed (block-crypto-slot.ts) and wakes the FUSE thread. It keeps its own copy
 * of the content key and wipes it when told to stop.
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
  try {
    const out =
      ctl[OP] === OP_ENCRYPT
        ? encryptBlocks(key, input, first, slot.fileId, slot.output)
        : decryptBlocks(key, input, first, slot.fileId, slot.output)
    ctl[RESULT] = out.length
  } catch (err) {
    ctl[RESULT] =
      err instanceof CofferError && err.code === 'ERR_STORAGE_CORRUPT' ? RESULT_CORRUPT : RESULT_ERROR
  }
  Atomics.compareExchange(ctl, STATE, JOB, DONE) // never over a STOP that came meanwhile
  Atomics.notify(ctl, STATE)
}
key.fill(0)
