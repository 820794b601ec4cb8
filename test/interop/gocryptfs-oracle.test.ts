/**
 * Random write/truncate sequences, both ways: applied through coffer's Volume and read back through a
 * gocryptfs mount, and applied through a gocryptfs mount and read back through coffer. Every final
 * file must equal a plain in-memory model (holes read as zeros). One mount per direction keeps this
 * cheap enough to run many sequences.
 */
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createVolume, openVolume } from '../../lib/storage/open-volume.js'
import { gocryptfsFsck, gocryptfsInit, mountGocryptfs, type GocryptfsMount } from '../helpers/gocryptfs.js'

const PASS = 'oracle'
const RUNS = 60
const MAX = 6 * 4096

type Op = { op: 'write'; pos: number; data: Uint8Array } | { op: 'truncate'; size: number }

const offset = fc.oneof(
  fc.integer({ min: 0, max: MAX }),
  fc
    .integer({ min: 0, max: 6 })
    .chain((b) => fc.integer({ min: -2, max: 2 }).map((d) => Math.max(0, b * 4096 + d))),
)
const ops = fc.array(
  fc.oneof(
    fc.record({
      op: fc.constant('write' as const),
      pos: offset,
      data: fc.uint8Array({ minLength: 1, maxLength: 9000 }),
    }),
    fc.record({ op: fc.constant('truncate' as const), size: offset }),
  ),
  { minLength: 1, maxLength: 10 },
)

function model(sequence: Op[]): Buffer {
  let m = Buffer.alloc(0)
  for (const o of sequence) {
    const size = o.op === 'write' ? Math.max(m.length, o.pos + o.data.length) : o.size
    const next = Buffer.alloc(size)
    m.copy(next, 0, 0, Math.min(m.length, size))
    if (o.op === 'write') next.set(o.data, o.pos)
    m = next
  }
  return m
}

let work: string
let passfile: string
const mounts: GocryptfsMount[] = []
const sequences = fc.sample(ops, { numRuns: RUNS, seed: 4242 })

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-gcoracle-'))
  passfile = join(work, 'pass')
  await writeFile(passfile, `${PASS}\n`)
})
afterEach(async () => {
  for (const m of mounts.splice(0)) await m.unmount()
})
afterAll(async () => {
  for (const m of mounts.splice(0)) await m.unmount()
  await rm(work, { recursive: true, force: true })
})

describe('random write/truncate sequences across implementations', () => {
  it('written through coffer, read through gocryptfs', async () => {
    const cipher = join(work, 'c2g')
    const mnt = join(work, 'c2g-mnt')
    await Promise.all([mkdir(cipher), mkdir(mnt)])
    const vol = await createVolume(cipher, Buffer.from(PASS), { scryptLogN: 10 })
    for (const [i, seq] of sequences.entries()) {
      const f = await vol.open(`/f${i}`, { create: true })
      for (const o of seq) await (o.op === 'write' ? f.write(o.pos, o.data) : f.truncate(o.size))
      await f.close()
    }
    vol.close()
    const m = await mountGocryptfs(cipher, mnt, passfile)
    mounts.push(m)
    for (const [i, seq] of sequences.entries())
      expect({ i, equal: (await readFile(join(mnt, `f${i}`))).equals(model(seq)) }).toEqual({
        i,
        equal: true,
      })
    await m.unmount()
    expect((await gocryptfsFsck(cipher, passfile)).code).toBe(0)
  })

  it('written through gocryptfs, read through coffer', async () => {
    const cipher = join(work, 'g2c')
    const mnt = join(work, 'g2c-mnt')
    await Promise.all([mkdir(cipher), mkdir(mnt)])
    await gocryptfsInit(cipher, passfile)
    const m = await mountGocryptfs(cipher, mnt, passfile)
    mounts.push(m)
    for (const [i, seq] of sequences.entries()) {
      const fh = await open(join(mnt, `f${i}`), 'w+')
      for (const o of seq) {
        if (o.op === 'write') await fh.write(o.data, 0, o.data.length, o.pos)
        else await fh.truncate(o.size)
      }
      await fh.close()
    }
    await m.unmount()
    const vol = await openVolume(cipher, Buffer.from(PASS))
    for (const [i, seq] of sequences.entries())
      expect({ i, equal: (await vol.readFile(`/f${i}`)).equals(model(seq)) }).toEqual({ i, equal: true })
    vol.close()
  })
})
