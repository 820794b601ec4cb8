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
    close: () => undefined,
  }
}
