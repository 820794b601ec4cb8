import { decryptBlocks, encryptBlocks } from './content-cipher.js'

/**
 * AES-GCM of consecutive content blocks, as OpenFile needs it: `encrypt` lays blocks out as on disk
 * (content-cipher.ts encryptBlocks), `decrypt` undoes that and rejects with ERR_STORAGE_CORRUPT if
 * any block fails authentication. Async so that an implementation may run the work on other
 * threads (block-crypto-workers.ts); the inline one answers at once.
 */
export interface BlockCrypto {
  /** With `into` (large enough), the stored blocks land there; likewise for decrypt. */
  encrypt(plain: Uint8Array, firstBlockNo: number, fileId: Uint8Array, into?: Buffer): Promise<Buffer>
  decrypt(stored: Uint8Array, firstBlockNo: number, fileId: Uint8Array, into?: Buffer): Promise<Buffer>
  /** Wipes the key copies; later calls are a programming error. */
  close(): void
}

/** On the calling thread. Keeps a reference to `key` (the volume wipes it at close). */
export function inlineBlockCrypto(key: Uint8Array): BlockCrypto {
  return {
    encrypt: async (plain, first, fileId, into) => encryptBlocks(key, plain, first, fileId, into),
    decrypt: async (stored, first, fileId, into) => decryptBlocks(key, stored, first, fileId, into),
    close: () => undefined,
  }
}
