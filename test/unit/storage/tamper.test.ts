/**
 * An attacker with write access to the backing directory: every change to ciphertext is an
 * ERR_STORAGE_CORRUPT (EIO through FUSE) for the data it touches, never wrong data, never a crash.
 */
import { randomBytes } from 'node:crypto'
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CIPHER_BS, PLAIN_BS } from '../../../lib/storage/content-cipher.js'
import { createVolume } from '../../../lib/storage/open-volume.js'
import { errnoOf } from '../../../lib/storage/posix-error.js'
import type { SkippedEntry, Volume } from '../../../lib/storage/volume.js'

const corrupt = expect.objectContaining({ code: 'ERR_STORAGE_CORRUPT' })
let work: string
let vol: Volume

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-tamper-'))
  await mkdir(join(work, 'c'))
  vol = await createVolume(join(work, 'c'), Buffer.from('pw'), { scryptLogN: 10 })
})
afterAll(async () => {
  vol.close()
  await rm(work, { recursive: true, force: true })
})

/** Writes `/<dir>/f` with `data` in a new directory; returns the backing file's path. */
async function fileWith(dir: string, data: Buffer): Promise<string> {
  const root = join(work, 'c')
  const before = new Set(await readdir(root))
  await vol.mkdir(`/${dir}`)
  await vol.writeFile(`/${dir}/f`, data)
  const backingDir = join(
    root,
    (await readdir(root)).find((n) => !before.has(n))!,
  )
  return join(
    backingDir,
    (await readdir(backingDir)).find((n) => n !== 'gocryptfs.diriv')!,
  )
}

/** The one backing entry of `dir` that is a symlink. */
async function backingSymlink(dir: string): Promise<string> {
  for (const n of await readdir(dir)) if ((await lstat(join(dir, n))).isSymbolicLink()) return join(dir, n)
  throw new Error('no symlink')
}

const block = (n: number): [number, number] => [18 + n * CIPHER_BS, 18 + (n + 1) * CIPHER_BS]

describe('tampered contents', () => {
  it('a flipped byte fails its block only; the other blocks still read', async () => {
    const data = randomBytes(3 * PLAIN_BS)
    const path = await fileWith('flip', data)
    const raw = await readFile(path)
    raw[block(1)[0] + 100]! ^= 0x01
    await writeFile(path, raw)
    const f = await vol.open('/flip/f')
    expect(await f.read(0, PLAIN_BS)).toEqual(data.subarray(0, PLAIN_BS))
    expect(await f.read(2 * PLAIN_BS, PLAIN_BS)).toEqual(data.subarray(2 * PLAIN_BS))
    const err = await f.read(PLAIN_BS + 5, 10).catch((e: unknown) => e)
    expect(err).toEqual(corrupt)
    expect(errnoOf(err)).toBe('EIO')
    await expect(f.read(0, 3 * PLAIN_BS)).rejects.toThrow(corrupt)
    // A partial write into the damaged block fails too, instead of re-encrypting garbage.
    await expect(f.write(PLAIN_BS + 1, Buffer.from('x'))).rejects.toThrow(corrupt)
    await f.close()
  })

  it('blocks swapped within a file fail', async () => {
    const path = await fileWith('swap', randomBytes(2 * PLAIN_BS))
    const raw = await readFile(path)
    const b0 = Buffer.from(raw.subarray(...block(0)))
    raw.copyWithin(block(0)[0], ...block(1))
    b0.copy(raw, block(1)[0])
    await writeFile(path, raw)
    await expect(vol.readFile('/swap/f')).rejects.toThrow(corrupt)
  })

  it('a block moved from another file (same position) fails: the file ID is authenticated', async () => {
    const a = await fileWith('xa', randomBytes(PLAIN_BS))
    const b = await fileWith('xb', randomBytes(PLAIN_BS))
    const rawA = await readFile(a)
    const rawB = await readFile(b)
    rawA.copy(rawB, 18, 18)
    await writeFile(b, rawB)
    await expect(vol.readFile('/xb/f')).rejects.toThrow(corrupt)
  })

  it('a damaged header or a truncated last block fails', async () => {
    const h = await fileWith('hdr', randomBytes(100))
    const raw = await readFile(h)
    raw[5]! ^= 1
    await writeFile(h, raw)
    await expect(vol.readFile('/hdr/f')).rejects.toThrow(corrupt)
    const t = await fileWith('trunc', randomBytes(5000))
    const rawT = await readFile(t)
    await writeFile(t, rawT.subarray(0, rawT.length - 20))
    await expect(vol.readFile('/trunc/f')).rejects.toThrow(corrupt)
  })

  it('a zeroed (non-hole) last block fails; a zeroed full block reads as a hole, as in gocryptfs', async () => {
    const data = randomBytes(PLAIN_BS + 10)
    const z = await fileWith('zero', data)
    const raw = await readFile(z)
    raw.fill(0, block(1)[0])
    await writeFile(z, raw)
    await expect(vol.readFile('/zero/f')).rejects.toThrow(corrupt)
    raw.fill(0, ...block(0))
    await writeFile(z, raw)
    const f = await vol.open('/zero/f')
    // Documented gocryptfs limitation (threat model): whole blocks can be zeroed into holes.
    expect(await f.read(0, PLAIN_BS)).toEqual(Buffer.alloc(PLAIN_BS))
    await f.close()
  })
})

describe('tampered metadata', () => {
  it('a corrupt diriv makes the directory unreadable with a coded error', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'coffer-iv-'))
    try {
      const v = await createVolume(fresh, Buffer.from('pw'), { scryptLogN: 10 })
      await v.mkdir('/d')
      const [dir] = (await readdir(fresh)).filter((n) => !n.startsWith('gocryptfs.'))
      await unlink(join(fresh, dir!, 'gocryptfs.diriv'))
      await writeFile(join(fresh, dir!, 'gocryptfs.diriv'), Buffer.alloc(16))
      await expect(v.readdir('/d')).rejects.toThrow(corrupt)
      await unlink(join(fresh, dir!, 'gocryptfs.diriv'))
      await writeFile(join(fresh, dir!, 'gocryptfs.diriv'), randomBytes(15))
      await expect(v.writeFile('/d/x', Buffer.from('1'))).rejects.toThrow(corrupt)
      v.close()
    } finally {
      await rm(fresh, { recursive: true, force: true })
    }
  })

  it('undecodable names, forged long names and a bad symlink target are reported, not returned', async () => {
    const fresh = await mkdtemp(join(tmpdir(), 'coffer-names-'))
    try {
      const v = await createVolume(fresh, Buffer.from('pw'), { scryptLogN: 10 })
      await v.writeFile('/good', Buffer.from('1'))
      await v.symlink('target', '/ln')
      await writeFile(join(fresh, 'AAAAAAAAAAAAAAAAAAAAAA'), 'x')
      await writeFile(join(fresh, 'not-base64!'), 'x')
      await writeFile(join(fresh, 'gocryptfs.longname.AAAA'), 'x')
      await writeFile(join(fresh, 'gocryptfs.longname.AAAA.name'), 'AAAAAAAAAAAAAAAAAAAAAA')
      const skipped: SkippedEntry[] = []
      const names = (await v.readdir('/', { onSkip: (e) => skipped.push(e) })).map((e) => e.name).sort()
      expect(names).toEqual(['good', 'ln'])
      expect(skipped.map((s) => s.backingName).sort()).toEqual([
        'AAAAAAAAAAAAAAAAAAAAAA',
        'gocryptfs.longname.AAAA',
        'not-base64!',
      ])
      const backingLn = await backingSymlink(fresh)
      await unlink(backingLn)
      await symlink('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', backingLn)
      await expect(v.readlink('/ln')).rejects.toThrow(corrupt)
      await unlink(backingLn)
      await symlink('%%%', backingLn)
      await expect(v.readlink('/ln')).rejects.toThrow(corrupt)
      await expect(v.getattr('/ln')).rejects.toThrow(corrupt)
      v.close()
    } finally {
      await rm(fresh, { recursive: true, force: true })
    }
  })
})
