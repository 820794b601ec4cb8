/**
 * Random namespace operations (mkdir, rmdir, create, unlink, rename, link, symlink) over a small pool
 * of short and long names, applied to a plain directory and to a coffer Volume: every operation
 * must succeed or fail alike (same errno), the trees must end equal, and gocryptfs must then see the
 * same tree in the volume.
 */
import { constants } from 'node:fs'
import * as fs from 'node:fs/promises'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVolume } from '../../lib/storage/open-volume.js'
import { errnoOf } from '../../lib/storage/posix-error.js'
import type { Volume } from '../../lib/storage/volume.js'
import { gocryptfsFsck, mountGocryptfs } from '../helpers/gocryptfs.js'
import { snapshotPlain, snapshotVolume } from '../helpers/sample-tree.js'

const PASS = 'namespace'
// Short names, a name at the 175-byte limit and long names (hashed, with .name files).
const NAMES = ['a', 'n'.repeat(175), 'L'.repeat(200), 'M'.repeat(240)]

type Op =
  | { op: 'mkdir' | 'rmdir' | 'unlink'; p: string[] }
  | { op: 'create'; p: string[]; size: number }
  | { op: 'rename' | 'link'; p: string[]; q: string[] }
  | { op: 'symlink'; p: string[] }

// Mostly shallow paths, so most operations find their parent and succeed.
const name = fc.constantFrom(...NAMES)
const path = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(name) },
  { weight: 3, arbitrary: fc.tuple(name, name) },
  { weight: 1, arbitrary: fc.tuple(name, name, name) },
)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('mkdir' as const), p: path }) },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('create' as const), p: path, size: fc.nat({ max: 9000 }) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('rmdir' as const, 'unlink' as const), p: path }) },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constantFrom('rename' as const, 'link' as const), p: path, q: path }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('symlink' as const), p: path }) },
)

const content = (size: number): Buffer => Buffer.alloc(size, size % 251)

/** The plain-directory oracle; files are created without following symlinks, as the Volume does. */
async function applyPlain(root: string, o: Op): Promise<string> {
  const at = (p: string[]): string => join(root, ...p)
  try {
    if (o.op === 'mkdir') await fs.mkdir(at(o.p))
    else if (o.op === 'rmdir') await fs.rmdir(at(o.p))
    else if (o.op === 'unlink') await fs.unlink(at(o.p))
    else if (o.op === 'create') {
      const fh = await fs.open(
        at(o.p),
        constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
        0o644,
      )
      await fh.write(content(o.size))
      await fh.close()
    } else if (o.op === 'rename') await fs.rename(at(o.p), at(o.q))
    else if (o.op === 'link') await fs.link(at(o.p), at(o.q))
    else await fs.symlink('dangling-target', at(o.p))
    return 'ok'
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'unknown'
  }
}

async function applyVolume(vol: Volume, prefix: string, o: Op): Promise<string> {
  const at = (p: string[]): string => `${prefix}/${p.join('/')}`
  try {
    if (o.op === 'mkdir') await vol.mkdir(at(o.p))
    else if (o.op === 'rmdir') await vol.rmdir(at(o.p))
    else if (o.op === 'unlink') await vol.unlink(at(o.p))
    else if (o.op === 'create') await vol.writeFile(at(o.p), content(o.size))
    else if (o.op === 'rename') await vol.rename(at(o.p), at(o.q))
    else if (o.op === 'link') await vol.link(at(o.p), at(o.q))
    else await vol.symlink('dangling-target', at(o.p))
    return 'ok'
  } catch (err) {
    return errnoOf(err)
  }
}

let work: string
let cipher: string
let plain: string
let passfile: string
let vol: Volume

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-gcns-'))
  cipher = join(work, 'cipher')
  plain = join(work, 'plain')
  passfile = join(work, 'pass')
  await Promise.all([fs.mkdir(cipher), fs.mkdir(plain), fs.mkdir(join(work, 'mnt'))])
  await writeFile(passfile, `${PASS}\n`)
  vol = await createVolume(cipher, Buffer.from(PASS), { scryptLogN: 10 })
})
afterAll(async () => {
  vol.close()
  await rm(work, { recursive: true, force: true })
})

describe('namespace operations: Volume vs plain directory vs gocryptfs', () => {
  it('agree op by op, and end in the same tree', async () => {
    let seq = 0
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 40 }), async (ops) => {
        const dir = `s${seq++}`
        await fs.mkdir(join(plain, dir))
        await vol.mkdir(`/${dir}`)
        const results = []
        for (const o of ops) {
          const a = await applyPlain(join(plain, dir), o)
          const b = await applyVolume(vol, `/${dir}`, o)
          results.push({ o: `${o.op} ${JSON.stringify(o)}`, a, b })
          expect({ op: o, volume: b }).toEqual({ op: o, volume: a })
        }
        expect(await snapshotVolume(vol, `/${dir}`)).toEqual(await snapshotPlain(plain, `/${dir}`))
      }),
      { numRuns: 150, seed: 7 },
    )
    // gocryptfs sees the same tree, and finds nothing wrong with it.
    const mnt = join(work, 'mnt')
    const m = await mountGocryptfs(cipher, mnt, passfile)
    try {
      expect(await snapshotPlain(mnt)).toEqual(await snapshotPlain(plain))
    } finally {
      await m.unmount()
    }
    expect((await gocryptfsFsck(cipher, passfile)).code).toBe(0)
  })
})
