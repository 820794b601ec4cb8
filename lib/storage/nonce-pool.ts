import { randomBytes, randomFillSync } from 'node:crypto'

/**
 * Random GCM nonces, fetched from the OS random source in 64 KiB batches. Each 4 KiB write needs
 * one 16-byte nonce, and one randomBytes call per write cost as much as encrypting the block. Every
 * byte handed out is fresh: a batch is consumed front to back and refilled only when used up, and
 * callers copy the nonces out before the next call.
 */
const BATCH = 64 * 1024
const pool = Buffer.allocUnsafe(BATCH)
let used = BATCH

/** `bytes` fresh random bytes (a view that stays valid until the next call). */
export function takeRandom(bytes: number): Buffer {
  if (bytes > BATCH / 4) return randomBytes(bytes)
  if (used + bytes > BATCH) {
    randomFillSync(pool)
    used = 0
  }
  const out = pool.subarray(used, used + bytes)
  used += bytes
  return out
}
