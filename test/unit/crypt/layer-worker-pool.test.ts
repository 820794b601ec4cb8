import { execFileSync } from 'node:child_process'
import { createCipheriv, createHmac, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LayerJob } from '../../../lib/crypt/layer-job.js'
import {
  createLayerWorkerPool,
  inThreadRunner,
  type LayerJobRunner,
} from '../../../lib/crypt/layer-worker-pool.js'
import { digestOf, type Digest } from '../../../lib/oci/digest.js'
import { isCofferError } from '../../../lib/util/errors.js'
import { WORKER_DEATHS, writeDyingWorker } from '../../helpers/dying-worker.js'

// The worker runs compiled code: vitest runs the sources, so the thread loads the build.
const WORKER_URL = new URL('../../../dist/lib/crypt/layer-worker.js', import.meta.url)
const MiB = 1024 * 1024

describe('layer jobs on worker threads', () => {
  let dir: string
  let pool: LayerJobRunner
  /** Plaintext layers of awkward sizes: empty, one byte, exactly one chunk, several with a tail. */
  const layers: { path: string; bytes: Buffer; digest: Digest }[] = []
  const key = randomBytes(32)
  const nonce = randomBytes(16)

  beforeAll(async () => {
    if (!existsSync(WORKER_URL)) throw new Error('dist/ is missing: run npm run build first')
    dir = await mkdtemp(join(tmpdir(), 'coffer-layer-pool-'))
    for (const [i, size] of [0, 1, MiB, 2 * MiB + 12_345, 3 * MiB + 7].entries()) {
      const bytes = randomBytes(size)
      const path = join(dir, `plain-${i}`)
      await writeFile(path, bytes)
      layers.push({ path, bytes, digest: digestOf(bytes) })
    }
    pool = createLayerWorkerPool({ size: 2, workerUrl: WORKER_URL })
  })

  afterAll(async () => {
    await pool?.close()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  const encryptJob = (l: (typeof layers)[number], target: string): LayerJob => ({
    op: 'encrypt',
    key,
    nonce,
    source: { path: l.path, digest: l.digest, size: l.bytes.length },
    target: { path: target },
  })

  it('encrypts several layers in parallel to the same bytes as the calling thread and as the cipher itself, and decrypts them back', async () => {
    const inThread = inThreadRunner()
    const results = await Promise.all(
      layers.map(async (l, i) => {
        const [a, b] = [join(dir, `enc-pool-${i}`), join(dir, `enc-thread-${i}`)]
        const [pa, pb] = await Promise.all([pool.run(encryptJob(l, a)), inThread.run(encryptJob(l, b))])
        return { l, a, b, pa, pb }
      }),
    )
    for (const { l, a, b, pa, pb } of results) {
      const [ca, cb] = [await readFile(a), await readFile(b)]
      const expected = createCipheriv('aes-256-ctr', key, nonce).update(l.bytes)
      expect(ca.equals(expected)).toBe(true)
      expect(cb.equals(expected)).toBe(true)
      expect(pa.digest).toBe(digestOf(expected))
      expect(pb).toEqual({ ...pa, hmac: pb.hmac })
      expect(Buffer.from(pa.hmac).equals(createHmac('sha256', key).update(expected).digest())).toBe(true)
      expect(Buffer.from(pb.hmac).equals(Buffer.from(pa.hmac))).toBe(true)
      expect((await stat(a)).mode & 0o777).toBe(0o600)
    }
    const back = await Promise.all(
      results.map(({ l, a, pa }, i) =>
        pool.run({
          op: 'decrypt',
          key,
          nonce,
          hmac: pa.hmac,
          plaintextDigest: l.digest,
          source: { path: a, digest: pa.digest, size: pa.size },
          target: { path: join(dir, `dec-${i}`) },
        }),
      ),
    )
    for (const [i, r] of back.entries()) {
      expect(r.digest).toBe(layers[i]!.digest)
      expect((await readFile(join(dir, `dec-${i}`))).equals(layers[i]!.bytes)).toBe(true)
    }
  })

  describe('refusals keep their codes and leave no plaintext', () => {
    let cipherPath: string
    let cipher: Buffer
    let hmac: Uint8Array
    const layer = (): (typeof layers)[number] => layers[3]!

    beforeAll(async () => {
      cipherPath = join(dir, 'refuse-cipher')
      hmac = (await pool.run(encryptJob(layer(), cipherPath))).hmac
      cipher = await readFile(cipherPath)
    })

    async function decrypt(
      bytes: Buffer,
      o: Partial<LayerJob> = {},
    ): Promise<{ err: unknown; target: string }> {
      const source = join(dir, `refuse-src-${randomBytes(4).toString('hex')}`)
      const target = join(dir, `refuse-out-${randomBytes(4).toString('hex')}`)
      await writeFile(source, bytes)
      const err = await pool
        .run({
          op: 'decrypt',
          key,
          nonce,
          hmac,
          plaintextDigest: layer().digest,
          source: { path: source, digest: digestOf(bytes), size: bytes.length },
          target: { path: target },
          ...o,
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        )
      return { err, target }
    }

    it('one flipped ciphertext byte (digest fixed up): ERR_CRYPT_DECRYPT_FAILED, no plaintext file', async () => {
      const flipped = Buffer.from(cipher)
      flipped[MiB + 1000] = flipped[MiB + 1000]! ^ 0x01
      const { err, target } = await decrypt(flipped)
      expect(isCofferError(err, 'ERR_CRYPT_DECRYPT_FAILED')).toBe(true)
      expect((err as Error).message).toBe('decryption failed')
      expect(existsSync(target)).toBe(false)
    })

    it('a truncated layer, a wrong HMAC or a wrong plaintext digest: ERR_CRYPT_DECRYPT_FAILED', async () => {
      for (const { err, target } of [
        await decrypt(cipher.subarray(0, MiB + 5)),
        await decrypt(cipher, { hmac: randomBytes(32) }),
        await decrypt(cipher, { plaintextDigest: digestOf('other') }),
      ]) {
        expect(isCofferError(err, 'ERR_CRYPT_DECRYPT_FAILED')).toBe(true)
        expect(existsSync(target)).toBe(false)
      }
    })

    it('a source that does not match its descriptor: the digest and size codes of the stream path', async () => {
      const wrongDigest = await decrypt(cipher, {
        source: { path: cipherPath, digest: digestOf('x'), size: cipher.length },
      })
      expect(isCofferError(wrongDigest.err, 'ERR_OCI_DIGEST_MISMATCH')).toBe(true)
      expect(existsSync(wrongDigest.target)).toBe(false)
      const tooShort = await decrypt(cipher, {
        source: { path: cipherPath, digest: digestOf(cipher), size: cipher.length - 1 },
      })
      expect(isCofferError(tooShort.err, 'ERR_OCI_SIZE_MISMATCH')).toBe(true)
      const tooLong = await decrypt(cipher, {
        source: { path: cipherPath, digest: digestOf(cipher), size: cipher.length + 1 },
      })
      expect(isCofferError(tooLong.err, 'ERR_OCI_SIZE_MISMATCH')).toBe(true)
      expect(existsSync(tooLong.target)).toBe(false)
    })
  })

  it('an aborted job terminates its thread, removes its output and rejects with the reason; the pool goes on', async () => {
    // A FIFO as the source: the job cannot finish before the test lets it.
    const fifo = join(dir, 'fifo')
    execFileSync('mkfifo', [fifo])
    const target = join(dir, 'fifo-out')
    const controller = new AbortController()
    const job = pool.run(
      {
        ...encryptJob(layers[4]!, target),
        source: { path: fifo, digest: layers[4]!.digest, size: layers[4]!.bytes.length },
      },
      { signal: controller.signal },
    )
    job.catch(() => {})
    const writer = await open(fifo, 'w')
    let closed = false
    try {
      await writer.write(layers[4]!.bytes.subarray(0, 256 * 1024))
      for (let i = 0; i < 400 && !existsSync(target); i++) await new Promise((r) => setTimeout(r, 5))
      expect(existsSync(target)).toBe(true)
      const reason = new Error('stop')
      controller.abort(reason)
      // A thread stops only once its pending read returns: end the FIFO (the job, terminated, never sees it).
      await writer.close()
      closed = true
      await expect(job).rejects.toBe(reason)
      expect(existsSync(target)).toBe(false)
    } finally {
      if (!closed) await writer.close()
    }
    const after = await pool.run(encryptJob(layers[1]!, join(dir, 'after-abort')))
    expect(after.size).toBe(1)
  })

  it('a thread that dies mid-job (exit or uncaught exception) is ERR_CRYPT_WORKER_FAILED, and its output is removed', async () => {
    for (const [name, death] of WORKER_DEATHS) {
      const url = await writeDyingWorker(
        dir,
        name,
        `({ job }) => { writeFileSync(job.target.path, 'partial'); ${death} }`,
        "import { writeFileSync } from 'node:fs'\n",
      )
      const dying = createLayerWorkerPool({ size: 1, workerUrl: url })
      try {
        const target = join(dir, `dying-out-${name}`)
        const err = await dying.run(encryptJob(layers[2]!, target)).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(isCofferError(err, 'ERR_CRYPT_WORKER_FAILED')).toBe(true)
        if (name === 'throw') expect((err as Error).message).toContain('boom')
        expect(existsSync(target)).toBe(false)
      } finally {
        await dying.close()
      }
    }
  })
})
