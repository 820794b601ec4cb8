import { decryptBlocks, encryptBlocks } from './content-cipher.js'

/**
 * AES-GCM of consecutive content blocks, as OpenFile needs it: `encrypt` lays blocks out as on disk
 * (content-cipher.ts encryptBlocks), `decrypt` undoes that and throws ERR_STORAGE_CORRUPT if any
 * block fails authentication. Synchronous even when other threads share the work
 * (block-crypto-workers.ts waits for them with Atomics.wait): an open file's operations must run
 * from start to end without yielding (open-file.ts), and an async hand-back cost more than the
 * AES-GCM of a 4 KiB request. The async pair is for callers that want a promise.
 */
export interface BlockCrypto {
  /** With `into` (large enough), the stored blocks land there; likewise for decrypt. */
  encryptSync(plain: Uint8Array, firstBlockNo: number, fileId: Uint8Array, into?: Buffer): Buffer
  decryptSync(stored: Uint8Array, firstBlockNo: number, fileId: Uint8Array, into?: Buffer): Buffer
  encrypt(plain: Uint8Array, firstBlockNo: number, fileId: Uint8Array, into?: Buffer): Promise<Buffer>
  decrypt(stored: Uint8Array, firstBlockNo: number, fileId: Uint8Array, into?: Buffer): Promise<Buffer>
  /**
   * Write-behind (FUSE server with worker threads only): copies `plain`, answers at once, and a
   * worker encrypts it and writes the stored blocks to `fd` at `position`; false if no worker can
   * (then the caller does it itself). One such job is in flight at a time; every other call here
   * first waits for it (`settle`), and its failure goes to `onError` then. `fd` must stay open
   * until the job is settled.
   */
  writeBehind?(
    plain: Uint8Array,
    firstBlockNo: number,
    fileId: Uint8Array,
    fd: number,
    position: number,
    onError: (err: Error) => void,
  ): boolean
  /** Waits for the write-behind job in flight, if any (see writeBehind). */
  settle(): void
  /** Whether a write-behind job has not been settled yet. */
  pending(): boolean
  /** Wipes the key copies; later calls are a programming error. */
  close(): void
}

/** On the calling thread. Keeps a reference to `key` (the volume wipes it at close). */
export function inlineBlockCrypto(key: Uint8Array): BlockCrypto {
  const encryptSync: BlockCrypto['encryptSync'] = (plain, first, fileId, into) =>
    encryptBlocks(key, plain, first, fileId, into)
  const decryptSync: BlockCrypto['decryptSync'] = (stored, first, fileId, into) =>
    decryptBlocks(key, stored, first, fileId, into)
  return {
    encryptSync,
    decryptSync,
    encrypt: async (plain, first, fileId, into) => encryptSync(plain, first, fileId, into),
    decrypt: async (stored, first, fileId, into) => decryptSync(stored, first, fileId, into),
    settle: () => undefined,
    pending: () => false,
    close: () => undefined,
  }
}
