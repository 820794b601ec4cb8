import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

/**
 * coffer's native AES-256-GCM over runs of gocryptfs blocks (native/gcm-blocks.c, built by
 * `npm run build`): about 2 µs per 4 KiB block where node:crypto, which needs a new cipher object
 * per block, takes 14-18 µs. content-cipher.ts uses it when it loaded and its JS path otherwise;
 * both follow the same rules and the tests hold them to the same results.
 */
export interface NativeGcm {
  /**
   * Decrypts consecutive stored blocks into `out`; -1 if all authenticated, else the index of the
   * first that did not (then nothing in `out` may be used).
   */
  open(
    key: Uint8Array,
    stored: Uint8Array,
    firstBlockNo: number,
    fileId: Uint8Array | null,
    out: Uint8Array,
  ): number
  /** Encrypts `plain` (cut every 4096 bytes) into `out` as laid out on disk, nonce i = nonces[16i..]. */
  seal(
    key: Uint8Array,
    plain: Uint8Array,
    firstBlockNo: number,
    fileId: Uint8Array | null,
    nonces: Uint8Array,
    out: Uint8Array,
  ): void
}

/**
 * Two directories up from this file: `native/build` at the repository root for the TypeScript
 * sources (tests), `dist/native/build` for the compiled ones (scripts/build-native.mjs puts a
 * copy there).
 */
const ADDON = new URL('../../native/build/gcm-blocks.node', import.meta.url)

/** The addon, or undefined if it was not built (then the JS path runs). */
export const nativeGcm: NativeGcm | undefined = load()

function load(): NativeGcm | undefined {
  try {
    return createRequire(import.meta.url)(fileURLToPath(ADDON)) as NativeGcm
  } catch {
    return undefined
  }
}
