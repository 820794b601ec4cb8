import { randomBytes } from 'node:crypto'
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { CIPHER_BS } from '../../../lib/storage/content-cipher.js'
import { changePassphrase, createVolume, openVolume, volumeInfo } from '../../../lib/storage/open-volume.js'
import { errnoOf } from '../../../lib/storage/posix-error.js'
import type { Volume } from '../../../lib/storage/volume.js'

const PW = Buffer.from('correct horse')
const code = (code: string) => expect.objectContaining({ code })
let work: string
let backing: string
let vol: Volume

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-vol-'))
  backing = join(work, 'cipher')
  await mkdir(backing)
  vol = await createVolume(backing, PW, { scryptLogN: 10 })
})
afterEach(async () => {
  vol.close()
  await rm(work, { recursive: true, force: true })
})

/** Backing entries other than the volume's own files. */
async function backingEntries(dir = backing): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n !== 'gocryptfs.conf' && n !== 'gocryptfs.diriv').sort()
}

describe('createVolume / openVolume', () => {
  it('lays out the backing directory as gocryptfs -init does', async () => {
    expect((await readdir(backing)).sort()).toEqual(['gocryptfs.conf', 'gocryptfs.diriv'])
    expect((await stat(join(backing, 'gocryptfs.conf'))).mode & 0o777).toBe(0o400)
    expect((await stat(join(backing, 'gocryptfs.diriv'))).mode & 0o777).toBe(0o444)
    expect((await stat(join(backing, 'gocryptfs.diriv'))).size).toBe(16)
    const info = await volumeInfo(backing)
    expect(info).toMatchObject({
      creator: 'coffer',
      version: 2,
      scrypt: { N: 1024, R: 8, P: 1, KeyLen: 32, saltBytes: 32 },
    })
    expect(info.featureFlags).toEqual(['HKDF', 'GCMIV128', 'DirIV', 'EMENames', 'LongNames', 'Raw64'])
  })

  it('refuses a non-empty directory, an existing volume and a missing one', async () => {
    await expect(createVolume(backing, PW, { scryptLogN: 10 })).rejects.toThrow(
      code('ERR_STORAGE_VOLUME_EXISTS'),
    )
    await expect(openVolume(join(work, 'nope'), PW)).rejects.toThrow(code('ERR_STORAGE_NOT_A_VOLUME'))
    await expect(openVolume(work, PW)).rejects.toThrow(code('ERR_STORAGE_NOT_A_VOLUME'))
  })

  it('opens with the passphrase, not with another one; passwd swaps them and keeps the data', async () => {
    await vol.writeFile('/f', Buffer.from('data'))
    await expect(openVolume(backing, Buffer.from('wrong'))).rejects.toThrow(
      code('ERR_STORAGE_WRONG_PASSPHRASE'),
    )
    await changePassphrase(backing, PW, Buffer.from('new one'))
    await expect(openVolume(backing, PW)).rejects.toThrow(code('ERR_STORAGE_WRONG_PASSPHRASE'))
    const v2 = await openVolume(backing, Buffer.from('new one'))
    expect((await v2.readFile('/f')).toString()).toBe('data')
    expect((await volumeInfo(backing)).scrypt.N).toBe(1024)
    v2.close()
  })
})

describe('Volume namespace', () => {
  it('hides its own files and encrypts every name', async () => {
    await vol.writeFile('/secret-name.txt', Buffer.from('x'))
    await vol.mkdir('/dir')
    const names = await backingEntries()
    expect(names).toHaveLength(2)
    for (const n of names) expect(n).toMatch(/^[A-Za-z0-9_-]+$/)
    expect((await vol.readdir('/')).map((e) => e.name).sort()).toEqual(['dir', 'secret-name.txt'])
  })

  it('mkdir writes a diriv inside, keeps the mode; rmdir refuses a non-empty dir', async () => {
    await vol.mkdir('/d', 0o750)
    const [d] = await backingEntries()
    expect((await readdir(join(backing, d!))).sort()).toEqual(['gocryptfs.diriv'])
    expect((await vol.getattr('/d')).mode & 0o7777).toBe(0o750)
    await vol.writeFile('/d/f', Buffer.from('1'))
    await expect(vol.rmdir('/d')).rejects.toThrow(code('ENOTEMPTY'))
    await vol.unlink('/d/f')
    await vol.rmdir('/d')
    expect(await backingEntries()).toEqual([])
    await expect(vol.getattr('/d')).rejects.toThrow(code('ENOENT'))
  })

  it('long names get a .name file, which unlink and rename clean up', async () => {
    const long = 'L'.repeat(200)
    await vol.writeFile(`/${long}`, Buffer.from('long'))
    const names = await backingEntries()
    expect(names).toHaveLength(2)
    expect(names[0]).toMatch(/^gocryptfs\.longname\.[A-Za-z0-9_-]{43}$/)
    expect(names[1]).toBe(`${names[0]}.name`)
    expect((await stat(join(backing, names[1]!))).mode & 0o777).toBe(0o444)
    expect((await vol.readdir('/')).map((e) => e.name)).toEqual([long])
    await vol.rename(`/${long}`, '/short')
    expect(await backingEntries()).toHaveLength(1)
    await vol.rename('/short', `/${'M'.repeat(250)}`)
    expect(await backingEntries()).toHaveLength(2)
    await vol.unlink(`/${'M'.repeat(250)}`)
    expect(await backingEntries()).toEqual([])
  })

  it('long-named directories and hard links keep their .name files right', async () => {
    const long = 'D'.repeat(180)
    await vol.mkdir(`/${long}`)
    await vol.writeFile(`/${long}/inner`, Buffer.from('in'))
    expect((await vol.readFile(`/${long}/inner`)).toString()).toBe('in')
    await vol.link(`/${long}/inner`, `/${'H'.repeat(190)}`)
    expect((await vol.getattr(`/${'H'.repeat(190)}`)).nlink).toBe(2)
    await vol.unlink(`/${long}/inner`)
    expect((await vol.readFile(`/${'H'.repeat(190)}`)).toString()).toBe('in')
    await vol.rmdir(`/${long}`)
    expect((await backingEntries()).length).toBe(2)
  })

  it('rename moves files and directories across directories, and replaces an empty directory', async () => {
    await vol.mkdir('/a')
    await vol.mkdir('/b')
    await vol.mkdir('/a/sub')
    await vol.writeFile('/a/sub/f', Buffer.from('deep'))
    await vol.rename('/a/sub', '/b/moved')
    expect((await vol.readFile('/b/moved/f')).toString()).toBe('deep')
    await vol.mkdir('/empty')
    await vol.rename('/b/moved', '/empty')
    expect((await vol.readFile('/empty/f')).toString()).toBe('deep')
    await vol.writeFile('/x', Buffer.from('x'))
    await vol.writeFile('/y', Buffer.from('y'))
    await vol.rename('/x', '/y')
    expect((await vol.readFile('/y')).toString()).toBe('x')
    await expect(vol.getattr('/x')).rejects.toThrow(code('ENOENT'))
  })

  it('symlink targets are encrypted; readlink and stat give the plaintext', async () => {
    await vol.symlink('../some/target', '/ln')
    const [n] = await backingEntries()
    const st = await lstat(join(backing, n!))
    expect(st.isSymbolicLink()).toBe(true)
    expect(await vol.readlink('/ln')).toBe('../some/target')
    const a = await vol.getattr('/ln')
    expect(a).toMatchObject({ type: 'symlink', size: '../some/target'.length })
  })

  it('statfs reports the backing file system with the plaintext name limit', async () => {
    const st = await vol.statfs()
    expect(st.bsize).toBeGreaterThan(0)
    expect(st.blocks).toBeGreaterThan(0)
    expect(st.namemax).toBe(255)
  })

  it('passes chmod, chown and utimes through to the backing entry', async () => {
    await vol.writeFile('/f', Buffer.from('1'))
    await vol.chmod('/f', 0o600)
    await vol.utimes('/f', new Date(1_000_000), new Date(2_000_000))
    await vol.chown('/f', process.getuid!(), process.getgid!())
    const a = await vol.getattr('/f')
    expect(a.mode & 0o777).toBe(0o600)
    expect(a.mtimeMs).toBe(2_000_000)
  })

  it('refuses bad paths and names with codes the FUSE layer maps to errno', async () => {
    await expect(vol.getattr('/a/../b')).rejects.toThrow(code('ERR_STORAGE_NAME_INVALID'))
    const tooLong = vol.writeFile(`/${'x'.repeat(256)}`, Buffer.alloc(1))
    await expect(tooLong).rejects.toThrow(code('ERR_STORAGE_NAME_TOO_LONG'))
    expect(errnoOf(await tooLong.catch((e: unknown) => e))).toBe('ENAMETOOLONG')
    expect(errnoOf(await vol.getattr('/missing').catch((e: unknown) => e))).toBe('ENOENT')
    await vol.mkdir('/d')
    expect(errnoOf(await vol.open('/d').catch((e: unknown) => e))).toBe('EISDIR')
    expect(errnoOf(await vol.unlink('/d').catch((e: unknown) => e))).toBe('EISDIR')
    await (await vol.open('/f', { create: true })).close()
    await expect(vol.open('/f', { create: true, exclusive: true })).rejects.toThrow(code('EEXIST'))
  })
})

describe('Volume contents', () => {
  it('stores an empty file as an empty backing file, and a 1-byte file in 51 bytes', async () => {
    await vol.writeFile('/e', Buffer.alloc(0))
    await vol.writeFile('/one', Buffer.from('1'))
    const sizes = await Promise.all(
      (await backingEntries()).map(async (n) => (await stat(join(backing, n))).size),
    )
    expect(sizes.sort((a, b) => a - b)).toEqual([0, 51])
    expect((await vol.getattr('/one')).size).toBe(1)
  })

  it('reads and writes at any offset, across block boundaries', async () => {
    const data = randomBytes(3 * 4096 + 100)
    await vol.writeFile('/f', data)
    const f = await vol.open('/f')
    expect(await f.read(4090, 20)).toEqual(data.subarray(4090, 4110))
    const patch = randomBytes(5000)
    await f.write(4000, patch)
    patch.copy(data, 4000)
    expect(await f.read(0, 1 << 20)).toEqual(data)
    expect(await f.read(data.length, 10)).toEqual(Buffer.alloc(0))
    await f.close()
  })

  it('truncate to 10000 on an empty file leaves blocks 0 and 1 as holes (as gocryptfs does)', async () => {
    await vol.writeFile('/s', Buffer.alloc(0))
    await vol.truncate('/s', 10000)
    const [n] = await backingEntries()
    const raw = await readFile(join(backing, n!))
    expect(raw.length).toBe(10114)
    expect(raw.subarray(18, 18 + 2 * CIPHER_BS).every((b) => b === 0)).toBe(true)
    expect((await vol.readFile('/s')).equals(Buffer.alloc(10000))).toBe(true)
  })

  it('a write far past the end pads the old last block and leaves holes between', async () => {
    const f = await vol.open('/h', { create: true })
    await f.write(0, Buffer.from('head'))
    await f.write(5 * 4096 + 7, Buffer.from('tail'))
    expect(await f.size()).toBe(5 * 4096 + 11)
    const all = await f.read(0, 1 << 20)
    expect(all.subarray(0, 4).toString()).toBe('head')
    expect(all.subarray(4, 5 * 4096 + 7).every((b) => b === 0)).toBe(true)
    expect(all.subarray(5 * 4096 + 7).toString()).toBe('tail')
    await f.close()
    const [n] = await backingEntries()
    const raw = await readFile(join(backing, n!))
    // Block 0 was zero-padded to a full block (real ciphertext); blocks 1–4 are holes.
    expect(raw.subarray(18, 18 + CIPHER_BS).every((b) => b === 0)).toBe(false)
    expect(raw.subarray(18 + CIPHER_BS, 18 + 5 * CIPHER_BS).every((b) => b === 0)).toBe(true)
  })

  it('shrinks inside a block and to zero (dropping the header); grows within a block', async () => {
    const data = randomBytes(9000)
    await vol.writeFile('/t', data)
    await vol.truncate('/t', 5000)
    expect(await vol.readFile('/t')).toEqual(data.subarray(0, 5000))
    await vol.truncate('/t', 5010)
    expect(await vol.readFile('/t')).toEqual(Buffer.concat([data.subarray(0, 5000), Buffer.alloc(10)]))
    await vol.truncate('/t', 8192)
    expect((await vol.getattr('/t')).size).toBe(8192)
    await vol.truncate('/t', 0)
    const [n] = await backingEntries()
    expect((await stat(join(backing, n!))).size).toBe(0)
  })

  it('hard links share contents through either name', async () => {
    await vol.writeFile('/a', Buffer.from('first'))
    await vol.link('/a', '/b')
    const f = await vol.open('/b')
    await f.write(0, Buffer.from('FIRST'))
    await f.close()
    expect((await vol.readFile('/a')).toString()).toBe('FIRST')
  })

  it('serialises concurrent writes to one file', async () => {
    const f = await vol.open('/c', { create: true })
    const g = await vol.open('/c')
    const expected = Buffer.alloc(64 * 1000)
    const writes: Promise<number>[] = []
    for (let i = 0; i < 64; i++) {
      const chunk = Buffer.alloc(1000, i + 1)
      chunk.copy(expected, i * 1000)
      writes.push((i % 2 ? f : g).write(i * 1000, chunk))
    }
    await Promise.all(writes)
    expect(await f.read(0, 1 << 20)).toEqual(expected)
    await f.close()
    await g.close()
  })

  it('refuses negative or fractional offsets', async () => {
    const f = await vol.open('/n', { create: true })
    await expect(f.read(-1, 1)).rejects.toThrow(code('ERR_INVALID_ARGUMENT'))
    await expect(f.write(1.5, Buffer.from('x'))).rejects.toThrow(code('ERR_INVALID_ARGUMENT'))
    await f.close()
  })
})
