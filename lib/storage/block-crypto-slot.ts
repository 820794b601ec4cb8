import { CIPHER_BS, FILE_ID_LEN } from './content-cipher.js'

/**
 * The shared memory between the FUSE server's thread and one block-crypto worker: a control word
 * array, the file ID, and an input and an output area of SLOT_BLOCKS blocks each. A job is handed
 * over by writing the input and setting STATE to JOB (Atomics.notify wakes the worker); the worker
 * writes the output and sets STATE to DONE. Message ports cost ~3× more per round trip than this
 * (postMessage was the largest item in the profile), which is most of what a 64 KiB job takes.
 */
export const SLOT_BLOCKS = 32 // one 128 KiB FUSE request
const AREA = SLOT_BLOCKS * CIPHER_BS

/** Indices into the control words. */
export const STATE = 0
export const OP = 1
export const IN_LEN = 2
export const FIRST_HI = 3
export const FIRST_LO = 4
/** Output length, or RESULT_CORRUPT / RESULT_ERROR. */
export const RESULT = 5
/** Set by the worker once it is running: until then jobs stay on the calling thread. */
export const READY = 6
/** OP_ENCRYPT_WRITE: the backing file's descriptor and the offset the stored blocks go to. */
export const FD = 7
export const POS_HI = 8
export const POS_LO = 9
/** With RESULT_ERROR: the errno number of a failed write, or 0. */
export const ERRNO = 10
const CONTROL_WORDS = 12

export const IDLE = 0
export const JOB = 1
export const DONE = 2
export const STOP = 3

export const OP_ENCRYPT = 1
export const OP_DECRYPT = 2
/** Encrypt, then write the stored blocks to FD at POS (write-behind, block-crypto-workers.ts). */
export const OP_ENCRYPT_WRITE = 3
export const RESULT_CORRUPT = -1
export const RESULT_ERROR = -2

export interface Slot {
  readonly ctl: Int32Array
  readonly fileId: Buffer
  readonly input: Buffer
  readonly output: Buffer
}

const FILE_ID_AT = CONTROL_WORDS * 4
const INPUT_AT = FILE_ID_AT + FILE_ID_LEN
const OUTPUT_AT = INPUT_AT + AREA

export function newSlotMemory(): SharedArrayBuffer {
  return new SharedArrayBuffer(OUTPUT_AT + AREA)
}

export function slotView(sab: SharedArrayBuffer): Slot {
  return {
    ctl: new Int32Array(sab, 0, CONTROL_WORDS),
    fileId: Buffer.from(sab, FILE_ID_AT, FILE_ID_LEN),
    input: Buffer.from(sab, INPUT_AT, AREA),
    output: Buffer.from(sab, OUTPUT_AT, AREA),
  }
}
