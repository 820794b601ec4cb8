import { createCipheriv, createHmac, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LayerChecks } from '../../../lib/image/layer-checks.js'
import {
  createStageWorkerPool,
  inThreadStager,
  type LayerStager,
} from '../../../lib/image/stage-worker/stage-runner.js'
import { digestOf } from '../../../lib/oci/digest.js'
import { isCofferError } from '../../../lib/util/errors.js'
import { WORKER_DEATHS, writeDyingWorker } from '../../helpers/dying-worker.js'
import { tarStream } from '../../helpers/tar-builder.js'

// The worker runs compiled code: vitest runs the sources, so the thread loads the build.
const WORKER_URL = new URL('../../../dist/lib/image/stage-worker/worker.js', import.meta.url)
const MiB = 1 << 20

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of r) parts.push(c as Buffer)
  return Buffer.concat(parts)
}

/** An encrypted gzip layer as ocicrypt writes it, and the plan to check it with. */
function encryptedLayer(tar: Buffer): { blob: Buffer; checks: LayerChecks } {
  const gz = gzipSync(tar, { level: 1 })
  const key = randomBytes(32)
  const nonce = randomBytes(16)
  const c = createCipheriv('aes-256-ctr', key, nonce)
  const blob = Buffer.concat([c.update(gz), c.final()])
  const hmac = createHmac('sha256', key).update(blob).digest()
  return {
    blob,
    checks: {
      blob: { digest: digestOf(blob), size: blob.length },
      compression: 'gzip',
      decryption: { key: { key, nonce, hmac }, plaintextDigest: digestOf(gz) },
    },
  }
}

/** A blob stream in network-sized chunks. */
const chunks = (b: Buffer, size = 64 * 1024): Readable =>
  Readable.from(
    Array.from({ length: Math.ceil(b.length / size) }, (_, i) => b.subarray(i * size, (i + 1) * size)),
  )

const OPTIONS = { whiteouts: 'record', durable: false } as const

describe('layer stage workers', () => {
  let dir: string
  let pool: LayerStager
  let tar: Buffer
  let layer: { blob: Buffer; checks: LayerChecks }
  let n = 0
  const dest = async (): Promise<string> => {
    const d = join(dir, `dest-${n++}`)
    await mkdir(d)
    return d
  }

  beforeAll(async () => {
    if (!existsSync(WORKER_URL)) throw new Error('dist/ is missing: run npm run build first')
    dir = await mkdtemp(join(tmpdir(), 'coffer-stage-'))
    tar = await readAll(
      tarStream([
        { name: 'etc', type: 'dir' },
        { name: 'etc/hostname', content: 'guest\n' },
        { name: 'big', content: randomBytes(5 * MiB + 7) },
        { name: 'link', type: 'symlink', target: 'etc/hostname' },
        { name: 'etc/.wh.gone', content: '' },
      ]),
    )
    layer = encryptedLayer(tar)
    pool = createStageWorkerPool({ size: 2, workerUrl: WORKER_URL })
  })

  afterAll(async () => {
    await pool?.close()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('stages layers on threads, several at once, exactly as the calling thread does', async () => {
    const inThread = inThreadStager()
    const [a, b, c] = await Promise.all([dest(), dest(), dest()])
    let fetched = 0
    const [ra, rb, rc] = await Promise.all([
      pool.stage(chunks(layer.blob), layer.checks, a, { ...OPTIONS, onBytes: (k) => (fetched += k) }),
      pool.stage(chunks(layer.blob, 1000), layer.checks, b, OPTIONS),
      inThread.stage(chunks(layer.blob), layer.checks, c, OPTIONS),
    ])
    expect(fetched).toBe(layer.blob.length)
    expect(ra.diffId).toBe(digestOf(tar))
    expect(rb).toEqual(ra)
    expect(rc).toEqual(ra)
    expect(ra.result.whiteouts).toEqual(['etc/gone'])
    for (const d of [a, b, c]) {
      expect(await readFile(join(d, 'etc/hostname'), 'utf8')).toBe('guest\n')
      expect((await readFile(join(d, 'big'))).length).toBe(5 * MiB + 7)
    }
  })

  it('a tampered layer rejects with its check code, and nothing is written after the rejection', async () => {
    const flipped = Buffer.from(layer.blob)
    flipped[flipped.length >> 1] = flipped[flipped.length >> 1]! ^ 0x40
    const checks = { ...layer.checks, blob: { digest: digestOf(flipped), size: flipped.length } }
    const d = await dest()
    const err = await pool.stage(chunks(flipped), checks, d, OPTIONS).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isCofferError(err, 'ERR_CRYPT_DECRYPT_FAILED')).toBe(true)
    const before = await readdir(d, { recursive: true })
    await new Promise((r) => setTimeout(r, 200))
    expect(await readdir(d, { recursive: true })).toEqual(before)
  })

  it('a blob that fails mid-way rejects with its own error; the thread serves the next layer', async () => {
    const half = layer.blob.subarray(0, layer.blob.length >> 1)
    const failing = Readable.from(
      (async function* () {
        yield half
        await new Promise((r) => setTimeout(r, 20))
        throw new Error('connection reset by peer')
      })(),
    )
    const err = await pool.stage(failing, layer.checks, await dest(), OPTIONS).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect((err as Error).message).toContain('connection reset by peer')
    const ok = await pool.stage(chunks(layer.blob), layer.checks, await dest(), OPTIONS)
    expect(ok.diffId).toBe(digestOf(tar))
  })

  it('an abort stops the thread and rejects with the reason; the pool goes on', async () => {
    const stalled = new Readable({ read() {} })
    stalled.push(layer.blob.subarray(0, MiB))
    const ac = new AbortController()
    const staging = pool.stage(stalled, layer.checks, await dest(), { ...OPTIONS, signal: ac.signal })
    setTimeout(() => ac.abort(new Error('pull canceled')), 50)
    await expect(staging).rejects.toThrow('pull canceled')
    const ok = await pool.stage(chunks(layer.blob), layer.checks, await dest(), OPTIONS)
    expect(ok.diffId).toBe(digestOf(tar))
  })

  it('a thread that dies mid-layer is ERR_IMAGE_WORKER_FAILED', async () => {
    for (const [name, death] of WORKER_DEATHS) {
      const url = await writeDyingWorker(dir, name, `(m) => { if (m.type === 'data') { ${death} } }`)
      const dying = createStageWorkerPool({ size: 1, workerUrl: url })
      try {
        const err = await dying.stage(chunks(layer.blob), layer.checks, await dest(), OPTIONS).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(isCofferError(err, 'ERR_IMAGE_WORKER_FAILED')).toBe(true)
        if (name === 'throw') expect((err as Error).message).toContain('boom')
      } finally {
        await dying.close()
      }
    }
  })
})
