/**
 * fsck and the parsers under attack: any single flipped bit in any stored file (contents, headers,
 * holes, long-name files) is reported by fsck; random input to every parser gives a coded error or
 * a value, never a crash.
 */
import { cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../../lib/storage/config-file.js'
import { decryptBlock, parseFileHeader } from '../../../lib/storage/content-cipher.js'
import { fsckVolume } from '../../../lib/storage/fsck.js'
import { NameCipher } from '../../../lib/storage/names.js'
import { createVolume, openVolume } from '../../../lib/storage/open-volume.js'
import { CofferError } from '../../../lib/util/errors.js'
import { volumeWriter, writeSampleTree } from '../../helpers/sample-tree.js'

const PASS = Buffer.from('fsck')
let work: string
let pristine: string
/** Backing files an attacker could flip a bit in (relative paths), with their sizes. */
let targets: { rel: string; size: number }[]

async function files(root: string, rel = ''): Promise<{ rel: string; size: number }[]> {
  const out: { rel: string; size: number }[] = []
  for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
    const r = join(rel, e.name)
    if (e.isDirectory()) out.push(...(await files(root, r)))
    else if (e.isFile() && e.name !== 'gocryptfs.conf' && e.name !== 'gocryptfs.diriv') {
      const { size } = await stat(join(root, r))
      if (size > 0) out.push({ rel: r, size })
    }
  }
  return out
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-fsck-'))
  pristine = join(work, 'pristine')
  await mkdir(pristine)
  const vol = await createVolume(pristine, PASS, { scryptLogN: 10 })
  await writeSampleTree(volumeWriter(vol))
  vol.close()
  targets = await files(pristine)
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

describe('fsckVolume', () => {
  it('finds no problem in a sound volume', async () => {
    const vol = await openVolume(pristine, PASS)
    const report = await fsckVolume(vol)
    vol.close()
    expect(report.problems).toEqual([])
    expect(report).toMatchObject({ dirs: 6, files: 18, symlinks: 4 })
  })

  it('reports any single flipped bit in any stored file, without throwing', async () => {
    expect(targets.length).toBeGreaterThan(15)
    let n = 0
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: targets.length - 1 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.nat({ max: 7 }),
        async (which, where, bit) => {
          const copy = join(work, `t${n++}`)
          await cp(pristine, copy, { recursive: true })
          try {
            const t = targets[which]!
            const raw = await readFile(join(copy, t.rel))
            raw[Math.floor(where * t.size)]! ^= 1 << bit
            await writeFile(join(copy, t.rel), raw)
            const vol = await openVolume(copy, PASS)
            const report = await fsckVolume(vol)
            vol.close()
            expect(report.problems.length).toBeGreaterThan(0)
          } finally {
            await rm(copy, { recursive: true, force: true })
          }
        },
      ),
      { numRuns: 40 },
    )
  })
})

describe('parsers never crash on random input', () => {
  const onlyCoded = (fn: () => unknown): void => {
    try {
      fn()
    } catch (err) {
      expect(err).toBeInstanceOf(CofferError)
    }
  }

  it('parseConfig', () => {
    fc.assert(fc.property(fc.string(), (s) => onlyCoded(() => parseConfig(s))))
    fc.assert(fc.property(fc.json(), (s) => onlyCoded(() => parseConfig(s))))
    fc.assert(
      fc.property(
        fc.record({
          Creator: fc.anything(),
          EncryptedKey: fc.anything(),
          ScryptObject: fc.anything(),
          Version: fc.anything(),
          FeatureFlags: fc.anything(),
          LongNameMax: fc.anything(),
        }),
        (o) => onlyCoded(() => parseConfig(JSON.stringify(o) ?? '')),
      ),
    )
  })

  it('name decryption, block decryption and headers', () => {
    const names = new NameCipher(Buffer.alloc(32, 9))
    const iv = Buffer.alloc(16, 1)
    fc.assert(fc.property(fc.string({ maxLength: 400 }), (s) => onlyCoded(() => names.decrypt(s, iv))))
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat(), (b, n) =>
        onlyCoded(() => decryptBlock(Buffer.alloc(32), b, n, Buffer.alloc(16, 1))),
      ),
    )
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (b) => onlyCoded(() => parseFileHeader(b))))
  })
})
