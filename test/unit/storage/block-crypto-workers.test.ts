import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import type { BlockCrypto } from '../../../lib/storage/block-crypto.js'
import { CIPHER_BS, PLAIN_BS, decryptBlocks, encryptBlocks } from '../../../lib/storage/content-cipher.js'

/**
 * The worker threads only exist in the compiled tree (the worker is a .js file), so the pool is
 * taken from dist/ when it has been built; from the TypeScript sources it runs inline, which the
 * same assertions cover.
 */
const DIST = new URL('../../../dist/lib/storage/block-crypto-workers.js', import.meta.url)
const built = existsSync(fileURLToPath(DIST))
const { MIN_SPLIT_BLOCKS, workerBlockCrypto } = (await import(
  built ? DIST.href : '../../../lib/storage/block-crypto-workers.js'
)) as typeof import('../../../lib/storage/block-crypto-workers.js')

const corrupt = expect.objectContaining({ code: 'ERR_STORAGE_CORRUPT' })

/** Buffer#equals: toEqual compares big buffers element by element, for seconds. */
const same = (a: Uint8Array, b: Uint8Array | undefined): boolean => !!b && Buffer.from(a).equals(b)

async function withPool(threads: number, fn: (c: BlockCrypto, key: Buffer) => Promise<void>) {
  const key = randomBytes(32)
  // Split every request of 8 blocks or more, as without the native AES-GCM, so the split runs.
  const c = workerBlockCrypto(key, threads, { splitBlocks: MIN_SPLIT_BLOCKS })
  // Jobs stay on this thread until the workers have started; give them time to, so that they run.
  if (built) await new Promise((r) => setTimeout(r, 1000))
  try {
    await fn(c, key)
  } finally {
    c.close()
  }
}

describe(`block crypto on worker threads (${built ? 'dist' : 'inline fallback'})`, () => {
  const fileId = randomBytes(16)

  it.each([1, 2, 3])('%i threads: split results match the inline format, every length', async (threads) => {
    await withPool(threads, async (c, key) => {
      for (const len of [
        1,
        PLAIN_BS,
        7 * PLAIN_BS + 5,
        8 * PLAIN_BS,
        32 * PLAIN_BS - 1,
        32 * PLAIN_BS,
        100 * PLAIN_BS + 9,
      ]) {
        const plain = randomBytes(len)
        const stored = await c.encrypt(plain, 1000, fileId)
        expect(stored.length).toBe(encryptBlocks(key, plain, 1000, fileId).length)
        expect(same(decryptBlocks(key, stored, 1000, fileId), plain)).toBe(true)
        expect(same(await c.decrypt(stored, 1000, fileId), plain)).toBe(true)
        const into = Buffer.alloc(len + 10)
        await c.decrypt(stored, 1000, fileId, into)
        expect(same(into.subarray(0, len), plain)).toBe(true)
        await expect(c.decrypt(stored, 1001, fileId)).rejects.toEqual(corrupt)
      }
    })
  })

  it('a tampered block anywhere fails the whole request with ERR_STORAGE_CORRUPT', async () => {
    await withPool(2, async (c, key) => {
      const plain = randomBytes(32 * PLAIN_BS)
      const stored = encryptBlocks(key, plain, 0, fileId)
      for (const block of [0, 5, 12, 20, 31]) {
        const t = Buffer.from(stored)
        t[block * CIPHER_BS + 100]! ^= 1
        await expect(c.decrypt(t, 0, fileId)).rejects.toEqual(corrupt)
      }
      expect(same(await c.decrypt(stored, 0, fileId), plain)).toBe(true) // the pool still works
    })
  })

  it('serves many requests issued at once', async () => {
    await withPool(2, async (c, key) => {
      const plains = Array.from({ length: 40 }, (_, i) => randomBytes((8 + i) * PLAIN_BS))
      const stored = await Promise.all(plains.map((p, i) => c.encrypt(p, i * 100, fileId)))
      stored.forEach((s, i) => expect(same(decryptBlocks(key, s, i * 100, fileId), plains[i])).toBe(true))
      const back = await Promise.all(stored.map((s, i) => c.decrypt(s, i * 100, fileId)))
      back.forEach((b, i) => expect(same(b, plains[i])).toBe(true))
    })
  })

  it('keeps block numbers above 2^32 apart', async () => {
    await withPool(2, async (c, key) => {
      const plain = randomBytes(16 * PLAIN_BS)
      const first = 2 ** 32 + 3
      const stored = await c.encrypt(plain, first, fileId)
      expect(same(decryptBlocks(key, stored, first, fileId), plain)).toBe(true)
      expect(() => decryptBlocks(key, stored, 3, fileId)).toThrow()
    })
  })

  it('write-behind: the worker encrypts and writes at the offset; a failed write goes to onError', async () => {
    // Write-behind exists only on a worker thread: without the build this fails, never skips.
    if (!built) throw new Error('dist/ is missing: run npm run build first')
    await withPool(1, async (c, key) => {
      const dir = mkdtempSync(join(tmpdir(), 'coffer-wb-'))
      try {
        const path = join(dir, 'f')
        const fd = openSync(path, 'w+')
        const plain = randomBytes(32 * PLAIN_BS)
        const want = Buffer.from(plain)
        const errors: Error[] = []
        expect(c.writeBehind!(plain, 7, fileId, fd, 100, (e) => errors.push(e))).toBe(true)
        plain.fill(0) // the job has its own copy
        c.settle()
        expect(errors).toEqual([])
        const stored = readFileSync(path).subarray(100)
        expect(stored.length).toBe(32 * CIPHER_BS)
        expect(same(decryptBlocks(key, stored, 7, fileId), want)).toBe(true)
        closeSync(fd)
        const readOnly = openSync(path, 'r')
        expect(c.writeBehind!(randomBytes(8 * PLAIN_BS), 0, fileId, readOnly, 0, (e) => errors.push(e))).toBe(
          true,
        )
        c.settle()
        expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['EBADF'])
        closeSync(readOnly)
        // The pool still answers afterwards.
        const again = randomBytes(16 * PLAIN_BS)
        expect(same(await c.decrypt(await c.encrypt(again, 1, fileId), 1, fileId), again)).toBe(true)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })
})
