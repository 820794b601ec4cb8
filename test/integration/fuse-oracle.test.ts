/**
 * 20,000 random operations through a real coffer FUSE mount (an ephemeral volume served by its own
 * `coffer mount` process), with a plain directory as the oracle: writes at random offsets (partial
 * blocks, block-straddling, far past EOF), truncates both ways, renames (also over existing files
 * and hard links), hard links, unlinks, reads and stats, plus two long-lived file descriptors
 * that keep writing while their names move or disappear. Every result and every errno must match,
 * and so must the final tree. Only async fs is used here; the mount is served by the child.
 */
import { createHash } from 'node:crypto'
import * as fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startCofferMount, type CofferMount } from '../helpers/coffer-mount.js'
import { snapshotPlain } from '../helpers/sample-tree.js'
import { readRange } from '../helpers/read-range.js'

const OPS = 20_000
const SEED = Number(process.env.FUSE_ORACLE_SEED ?? 20261123)
const NAMES = ['a', 'b', 'c', 'sub/d', 'sub/e', `sub/${'L'.repeat(200)}`, 'f', 'g']
const MAX_OFFSET = 300_000
const MAX_LEN = 70_000

let work: string
let mount: CofferMount | undefined

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'coffer-fuse-oracle-'))
  await fs.mkdir(join(work, 'plain/sub'), { recursive: true })
  await fs.mkdir(join(work, 'mnt'))
  mount = await startCofferMount(['--ephemeral', join(work, 'mnt'), '--backing', join(work, 'backing')], {
    env: { COFFER_MOUNT_STATE_DIR: join(work, 'state') },
  })
  await fs.mkdir(join(work, 'mnt/sub'))
})
afterAll(async () => {
  await mount?.stop()
  await fs.rm(work, { recursive: true, force: true })
})

/** mulberry32: small, seeded, reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Outcome = string

/** Runs `fn`, turning its result or its errno into a comparable string. */
async function outcome(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    const v = await fn()
    if (Buffer.isBuffer(v)) return `ok ${v.length} ${createHash('sha256').update(v).digest('hex')}`
    return `ok ${JSON.stringify(v ?? null)}`
  } catch (err) {
    return `err ${(err as NodeJS.ErrnoException).code ?? String(err)}`
  }
}

async function pwrite(path: string, pos: number, data: Buffer): Promise<number> {
  const fh = await fs.open(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644)
  try {
    return (await fh.write(data, 0, data.length, pos)).bytesWritten
  } finally {
    await fh.close()
  }
}

it(`${OPS} random operations give the same results as a plain directory`, { timeout: 900_000 }, async () => {
  const rnd = prng(SEED)
  const int = (n: number): number => Math.floor(rnd() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
  const roots = [join(work, 'plain'), join(work, 'mnt')] as const
  // Two long-lived descriptors per side, opened on the same names.
  const held = await Promise.all(
    roots.map((r) => Promise.all([fs.open(join(r, 'a'), 'w+'), fs.open(join(r, 'sub/d'), 'w+')])),
  )
  const counts: Record<string, number> = {}
  try {
    for (let i = 0; i < OPS; i++) {
      const r = rnd()
      const name = pick(NAMES)
      const other = pick(NAMES)
      let op: string
      let run: (root: string, side: number) => Promise<unknown>
      if (r < 0.3) {
        // Mostly small and unaligned, sometimes large or far past the end (holes).
        const pos = rnd() < 0.1 ? int(MAX_OFFSET) : int(3 * 4096 + 100)
        const len = rnd() < 0.2 ? int(MAX_LEN) : int(5000) + 1
        const data = Buffer.alloc(len, (i % 251) + 1)
        if (len >= 4) data.writeUInt32LE(i, int(len - 3))
        op = 'write'
        run = (root) => pwrite(join(root, name), pos, data)
      } else if (r < 0.5) {
        const pos = int(MAX_OFFSET / 4)
        const len = int(MAX_LEN)
        op = 'read'
        run = (root) => readRange(join(root, name), pos, len)
      } else if (r < 0.6) {
        const size = rnd() < 0.2 ? 0 : int(MAX_OFFSET / 2)
        op = 'truncate'
        run = (root) => fs.truncate(join(root, name), size)
      } else if (r < 0.68) {
        op = 'rename'
        run = (root) => fs.rename(join(root, name), join(root, other))
      } else if (r < 0.72) {
        op = 'link'
        run = (root) => fs.link(join(root, name), join(root, other))
      } else if (r < 0.76) {
        op = 'unlink'
        run = (root) => fs.unlink(join(root, name))
      } else if (r < 0.86) {
        op = 'stat'
        run = async (root) => {
          const st = await fs.stat(join(root, name))
          return { size: st.size, nlink: st.nlink }
        }
      } else {
        // Through a held descriptor: its name may have been renamed or unlinked meanwhile.
        const which = int(2)
        const pos = int(MAX_OFFSET / 4)
        const write = rnd() < 0.6
        const len = int(20_000) + 1
        const data = Buffer.alloc(len, (i % 13) + 100)
        op = write ? 'fd-write' : 'fd-read'
        run = async (_root, side) => {
          const fh = held[side]![which]!
          if (write) return (await fh.write(data, 0, len, pos)).bytesWritten
          const buf = Buffer.alloc(len)
          const { bytesRead } = await fh.read(buf, 0, len, pos)
          return buf.subarray(0, bytesRead)
        }
      }
      const expected = await outcome(() => run(roots[0], 0))
      const got = await outcome(() => run(roots[1], 1))
      if (got !== expected)
        throw new Error(`op #${i} ${op} ${name} ${other}: plain gave ${expected}, coffer gave ${got}`)
      counts[op] = (counts[op] ?? 0) + 1
    }
  } finally {
    for (const side of held) for (const fh of side) await fh.close()
  }
  // Every kind of operation ran many times, and some failed the same way on both sides.
  for (const op of ['write', 'read', 'truncate', 'rename', 'link', 'unlink', 'stat', 'fd-write', 'fd-read'])
    expect(counts[op] ?? 0).toBeGreaterThan(300)
  expect(await snapshotPlain(roots[1])).toEqual(await snapshotPlain(roots[0]))
  expect(mount!.stderr()).not.toContain('EIO')
})
