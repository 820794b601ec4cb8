/**
 * Property: any sequence of writes, truncates and reads on a Volume file behaves exactly like the
 * same sequence on a plain in-memory buffer (holes read as zeros), and survives close and reopen.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVolume, openVolume } from '../../../lib/storage/open-volume.js'
import type { Volume } from '../../../lib/storage/volume.js'

const MAX = 5 * 4096 + 100

type Op =
  | { op: 'write'; pos: number; data: Uint8Array }
  | { op: 'truncate'; size: number }
  | { op: 'read'; pos: number; len: number }

// Offsets cluster around block boundaries, where the off-by-one bugs live.
const offset = fc.oneof(
  fc.integer({ min: 0, max: MAX }),
  fc
    .integer({ min: 0, max: 5 })
    .chain((b) => fc.integer({ min: -3, max: 3 }).map((d) => Math.max(0, b * 4096 + d))),
)
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant('write' as const),
    pos: offset,
    data: fc.uint8Array({ minLength: 0, maxLength: 9000 }),
  }),
  fc.record({ op: fc.constant('truncate' as const), size: offset }),
  fc.record({ op: fc.constant('read' as const), pos: offset, len: fc.integer({ min: 0, max: 10000 }) }),
)

function apply(model: Buffer, o: Op): Buffer {
  if (o.op === 'write') {
    if (o.data.length === 0) return model
    const out = Buffer.alloc(Math.max(model.length, o.pos + o.data.length))
    model.copy(out)
    out.set(o.data, o.pos)
    return out
  }
  if (o.op === 'truncate') {
    const out = Buffer.alloc(o.size)
    model.copy(out, 0, 0, Math.min(model.length, o.size))
    return out
  }
  return model
}

let work: string
let backing: string
let vol: Volume

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-oracle-'))
  backing = join(work, 'c')
  await mkdir(backing)
  vol = await createVolume(backing, Buffer.from('pw'), { scryptLogN: 10 })
})
afterAll(async () => {
  vol.close()
  await rm(work, { recursive: true, force: true })
})

describe('Volume file vs in-memory oracle', () => {
  it('agrees on every read, size and final content', async () => {
    let run = 0
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
        const path = `/f${run++}`
        let model: Buffer = Buffer.alloc(0)
        const f = await vol.open(path, { create: true, exclusive: true })
        try {
          for (const o of ops) {
            if (o.op === 'write') expect(await f.write(o.pos, o.data)).toBe(o.data.length)
            else if (o.op === 'truncate') await f.truncate(o.size)
            else expect(await f.read(o.pos, o.len)).toEqual(model.subarray(o.pos, o.pos + o.len))
            model = apply(model, o)
            expect(await f.size()).toBe(model.length)
          }
        } finally {
          await f.close()
        }
        expect((await vol.getattr(path)).size).toBe(model.length)
        expect(await vol.readFile(path)).toEqual(model)
      }),
      { numRuns: 60 },
    )
    // And a fresh Volume (new keys derived from the conf) reads the same files.
    const again = await openVolume(backing, Buffer.from('pw'))
    expect((await again.readdir('/')).length).toBe(run)
    again.close()
  })
})
