/**
 * The layer store with real processes: diff_id verification, records and gc, kill -9 at random
 * points during unpacks (the store stays consistent and the next unpack succeeds), 8 concurrent
 * processes unpacking overlapping layers (one commit per layer, the others reuse it), and bounded
 * memory while unpacking a 512 MiB layer.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openLayerStore } from '../../lib/image/layer-store/index.js'
import { unpackLayer } from '../../lib/image/unpack/index.js'
import { isCofferError } from '../../lib/util/errors.js'
import { snapshotTree } from '../helpers/layer-image.js'
import { tarBuffer, type TarEntry } from '../helpers/tar-builder.js'

const VITE_NODE = fileURLToPath(new URL('../../node_modules/.bin/vite-node', import.meta.url))
const CHILD = fileURLToPath(new URL('./fixtures/layer-store-child.ts', import.meta.url))
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

interface Layer {
  diffId: string
  file: string
  tar: Buffer
}

let work: string
const layers: Layer[] = []

/** A layer with many small files, a few MiB of content, whiteouts and links: slow enough to kill mid-way. */
function layerEntries(seed: string): TarEntry[] {
  const entries: TarEntry[] = [{ name: `${seed}/`, type: 'dir' }]
  for (let i = 0; i < 300; i++) {
    entries.push({
      name: `${seed}/d${i % 10}/f${i}`,
      content: createHash('sha256').update(`${seed}${i}`).digest('hex').repeat(200),
    })
  }
  entries.push({ name: `${seed}/blob`, content: Buffer.alloc(4 << 20, seed.charCodeAt(0)) })
  entries.push({ name: `${seed}/hard`, type: 'link', target: `${seed}/blob` })
  entries.push({ name: `${seed}/sym`, type: 'symlink', target: '/etc/passwd' })
  entries.push({ name: `.wh.gone-${seed}`, content: '' })
  return entries
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-layer-store-'))
  for (const seed of ['a', 'b', 'c']) {
    const tar = await tarBuffer(layerEntries(seed))
    const file = join(work, `${seed}.tar`)
    await writeFile(file, tar)
    layers.push({ diffId: sha(tar), file, tar })
  }
})

afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

/** The tree a layer must have in the store: the same unpack, done once in a fresh dir. */
const expectedTrees = new Map<string, unknown>()
async function expectedTree(l: Layer): Promise<unknown> {
  if (!expectedTrees.has(l.diffId)) expectedTrees.set(l.diffId, await computeTree(l))
  return expectedTrees.get(l.diffId)
}

async function computeTree(l: Layer): Promise<unknown> {
  const dir = await mkdtemp(join(work, 'expect-'))
  try {
    await unpackLayer(Readable.from([l.tar]), dir, {
      whiteouts: process.getuid?.() === 0 ? 'overlay' : 'record',
    })
    return await snapshotTree(dir, { mtimes: ['file', 'symlink'] })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function runChild(args: string[]): {
  child: ChildProcess
  opened: Promise<void>
  done: Promise<{ code: number | null; out: string; err: string }>
} {
  const child = spawn(VITE_NODE, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  let onOpen: () => void = () => undefined
  const opened = new Promise<void>((r) => (onOpen = r))
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString()
    if (out.includes('open\n')) onOpen()
  })
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const done = new Promise<{ code: number | null; out: string; err: string }>((r) =>
    child.on('close', (code) => {
      onOpen()
      r({ code, out, err })
    }),
  )
  return { child, opened, done }
}

async function expectConsistent(storeDir: string): Promise<void> {
  const store = await openLayerStore(storeDir) // cleans what dead processes left
  expect(await readdir(join(storeDir, 'staging'))).toEqual([])
  expect(await readdir(join(storeDir, 'trash'))).toEqual([])
  for (const diffId of await store.list()) {
    const l = layers.find((x) => x.diffId === diffId)
    expect(l, `unexpected layer ${diffId}`).toBeDefined()
    const got = await store.get(diffId)
    expect(await snapshotTree(got!.rootfs, { mtimes: ['file', 'symlink'] })).toEqual(await expectedTree(l!))
  }
}

describe('layer store', () => {
  it('commits a verified layer once, reuses it, and commits nothing on a diff_id mismatch', async () => {
    const dir = join(work, 'basic')
    const store = await openLayerStore(dir)
    const [a, b] = layers as [Layer, Layer]
    const bad = await store.unpack(b.diffId, Readable.from([a.tar])).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isCofferError(bad, 'ERR_IMAGE_DIFF_ID_MISMATCH')).toBe(true)
    expect(await store.list()).toEqual([])
    expect(await readdir(join(dir, 'staging'))).toEqual([])

    const first = await store.unpack(a.diffId, Readable.from([a.tar]))
    expect(first.reused).toBe(false)
    expect(first.meta.whiteouts).toEqual(['gone-a'])
    const again = await store.unpack(a.diffId, Readable.from([Buffer.from('never read')]))
    expect(again.reused).toBe(true)
    expect(await store.list()).toEqual([a.diffId])
  })

  it('refuses a malformed diff_id and reports a damaged record', async () => {
    const dir = join(work, 'corrupt')
    const store = await openLayerStore(dir)
    await expect(store.unpack('sha256:xyz', Readable.from([]))).rejects.toMatchObject({
      code: 'ERR_OCI_DIGEST_INVALID',
    })
    const [a] = layers as [Layer]
    await store.unpack(a.diffId, Readable.from([a.tar]))
    await writeFile(join(dir, 'layers', 'sha256', a.diffId.slice(7), 'layer.json'), '{"schemaVersion":1}')
    await expect(store.get(a.diffId)).rejects.toMatchObject({ code: 'ERR_IMAGE_STORE_CORRUPT' })
  })

  it('gc removes only layers no image references', async () => {
    const dir = join(work, 'gc')
    const store = await openLayerStore(dir)
    for (const l of layers) await store.unpack(l.diffId, Readable.from([l.tar]))
    const [a, b, c] = layers as [Layer, Layer, Layer]
    const m1 = sha(Buffer.from('manifest-1'))
    const m2 = sha(Buffer.from('manifest-2'))
    await store.putImage({ manifestDigest: m1, diffIds: [a.diffId, b.diffId] })
    await store.putImage({ manifestDigest: m2, diffIds: [b.diffId] })
    expect(await store.getImage(m1)).toEqual({ manifestDigest: m1, diffIds: [a.diffId, b.diffId] })
    expect(await store.gc()).toEqual([c.diffId])
    await store.deleteImage(m1)
    expect(await store.gc()).toEqual([a.diffId])
    expect(await store.list()).toEqual([b.diffId])
    expect(await readdir(join(dir, 'trash'))).toEqual([])
  })

  it('stays consistent when unpacking processes are killed with SIGKILL at random points (24 times)', async () => {
    const dir = join(work, 'crash')
    await mkdir(dir)
    const args = ['unpack', dir, ...layers.flatMap((l) => [l.diffId, l.file])]
    // Time one whole run, so the kills land anywhere inside one on a fast or a slow machine.
    const timing = runChild(['unpack', join(work, 'timing'), ...args.slice(2)])
    await timing.opened
    const t0 = Date.now()
    expect((await timing.done).code).toBe(0)
    const window = Math.max(50, (Date.now() - t0) * 0.9)
    let killedMidway = 0
    for (let i = 0; i < 24; i++) {
      // A fresh store every other round, so most kills land in first (non-reused) unpacks.
      if (i % 2 === 0) await rm(dir, { recursive: true, force: true })
      const run = runChild(args)
      await run.opened
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * window)))
      run.child.kill('SIGKILL')
      const res = await run.done
      if (res.code !== 0) killedMidway++
      await expectConsistent(dir)
    }
    expect(killedMidway).toBeGreaterThanOrEqual(12)
    const final = runChild(args)
    const res = await final.done
    expect(res.code, res.err).toBe(0)
    await expectConsistent(dir)
    expect((await (await openLayerStore(dir)).list()).sort()).toEqual(layers.map((l) => l.diffId).sort())
  }, 300_000)

  it('8 concurrent processes unpacking overlapping layers: one commit per layer, all share it', async () => {
    const dir = join(work, 'concurrent')
    const [a, b, c] = layers as [Layer, Layer, Layer]
    const sets = [[a, b], [b, c], [c, a], [a, b, c], [b], [c, b], [a], [b, a]]
    const runs = sets.map((s) => runChild(['unpack', dir, ...s.flatMap((l) => [l.diffId, l.file])]))
    const results = await Promise.all(runs.map((r) => r.done))
    const commits = new Map<string, number>()
    for (const r of results) {
      expect(r.code, r.err).toBe(0)
      for (const line of r.out.split('\n')) {
        if (!line.startsWith('{"diffId"')) continue
        const { diffId, reused } = JSON.parse(line) as { diffId: string; reused: boolean }
        if (!reused) commits.set(diffId, (commits.get(diffId) ?? 0) + 1)
      }
    }
    expect([...commits.values()]).toEqual([1, 1, 1])
    await expectConsistent(dir)
  }, 300_000)

  it('unpacks a 512 MiB layer with bounded memory', async () => {
    const dir = join(work, 'big')
    const run = runChild(['big', dir, String(512 << 20)])
    const res = await run.done
    expect(res.code, res.err).toBe(0)
    const lines = res.out.trim().split('\n')
    const done = JSON.parse(lines[1] as string) as { bytes: number }
    expect(done.bytes).toBe(512 << 20)
    const { maxRssKiB } = JSON.parse(lines[2] as string) as { maxRssKiB: number }
    // vite-node itself takes ~150 MiB; buffering the layer would take at least 512 MiB more.
    expect(maxRssKiB / 1024, `peak RSS ${Math.round(maxRssKiB / 1024)} MiB`).toBeLessThan(320)
    await rm(dir, { recursive: true, force: true })
  }, 300_000)
})
