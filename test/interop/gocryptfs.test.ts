/**
 * coffer's Volume against the real Debian gocryptfs 2.3, both ways: a tree written through
 * coffer's API mounts in gocryptfs and reads back equal (and passes `gocryptfs -fsck`); a tree
 * written through a gocryptfs mount reads back equal through coffer. The expected tree is the same
 * steps applied to a plain directory.
 */
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createVolume, openVolume, volumeInfo } from '../../lib/storage/open-volume.js'
import {
  dumpMasterKey,
  gocryptfsFsck,
  gocryptfsInit,
  mountGocryptfs,
  runTool,
  type GocryptfsMount,
} from '../helpers/gocryptfs.js'
import {
  bytes,
  plainWriter,
  snapshotPlain,
  snapshotVolume,
  volumeWriter,
  writeSampleTree,
  type Snapshot,
} from '../helpers/sample-tree.js'

const PASS = 'interop passphrase'
let work: string
let passfile: string
let expected: Snapshot
const mounts: GocryptfsMount[] = []

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-gcfs-'))
  passfile = join(work, 'pass')
  await writeFile(passfile, `${PASS}\n`)
  await mkdir(join(work, 'plain'))
  await writeSampleTree(plainWriter(join(work, 'plain')))
  expected = await snapshotPlain(join(work, 'plain'))
})
afterEach(async () => {
  for (const m of mounts.splice(0)) await m.unmount()
})
afterAll(async () => {
  for (const m of mounts.splice(0)) await m.unmount()
  await rm(work, { recursive: true, force: true })
})

async function fresh(name: string): Promise<{ cipher: string; mnt: string }> {
  const cipher = join(work, `${name}-cipher`)
  const mnt = join(work, `${name}-mnt`)
  await mkdir(cipher)
  await mkdir(mnt)
  return { cipher, mnt }
}

/**
 * Every backing entry as type, name length, size and which 4128-byte blocks are all zero (holes):
 * all of it is determined by the plaintext tree, none of it by random IDs or nonces.
 */
async function backingLayout(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const name of await readdir(dir)) {
    if (name === 'gocryptfs.conf') continue
    const path = join(dir, name)
    const st = await lstat(path)
    const kind = name.startsWith('gocryptfs.longname.')
      ? name.endsWith('.name')
        ? 'longname-file'
        : 'longname'
      : 'name'
    if (st.isDirectory()) {
      out.push(`dir ${kind}:${name.length}`, ...(await backingLayout(path)).map((l) => `  ${l}`))
    } else if (st.isSymbolicLink()) {
      out.push(`symlink ${kind}:${name.length} target:${(await readlink(path)).length}`)
    } else {
      const data = await readFile(path)
      const holes: number[] = []
      for (let off = 18, n = 0; off + 4128 <= data.length; off += 4128, n++)
        if (data.subarray(off, off + 4128).every((b) => b === 0)) holes.push(n)
      out.push(`file ${kind}:${name.length} size:${st.size} nlink:${st.nlink} holes:${holes.join(',')}`)
    }
  }
  return out.sort()
}

async function mount(cipher: string, mnt: string): Promise<GocryptfsMount> {
  const m = await mountGocryptfs(cipher, mnt, passfile)
  mounts.push(m)
  return m
}

describe('coffer writes, gocryptfs reads', () => {
  it('every file, directory, symlink and hard link reads back equal through a gocryptfs mount', async () => {
    const { cipher, mnt } = await fresh('c2g')
    const vol = await createVolume(cipher, Buffer.from(PASS), { scryptLogN: 10 })
    await writeSampleTree(volumeWriter(vol))
    vol.close()
    expect(expected['/sparse']).toMatchObject({ size: 50_004 })
    const m = await mount(cipher, mnt)
    expect(await snapshotPlain(mnt)).toEqual(expected)
    await m.unmount()
    const fsck = await gocryptfsFsck(cipher, passfile)
    expect(fsck.stdout + fsck.stderr).toContain('no problems found')
    expect(fsck.code).toBe(0)
    const info = await runTool('gocryptfs', ['-info', cipher])
    expect(info.stdout).toContain('FeatureFlags:      HKDF GCMIV128 DirIV EMENames LongNames Raw64')
  })

  it('gocryptfs-xray unwraps the same master key coffer wrapped', async () => {
    const { cipher } = await fresh('xray')
    ;(await createVolume(cipher, Buffer.from(PASS), { scryptLogN: 10 })).close()
    expect(await dumpMasterKey(join(cipher, 'gocryptfs.conf'), PASS)).toMatch(/^[0-9a-f]{64}$/)
  })
})

describe('gocryptfs writes, coffer reads', () => {
  it('every file, directory, symlink and hard link reads back equal through the Volume API', async () => {
    const { cipher, mnt } = await fresh('g2c')
    await gocryptfsInit(cipher, passfile)
    const m = await mount(cipher, mnt)
    await writeSampleTree(plainWriter(mnt))
    await m.unmount()
    const vol = await openVolume(cipher, Buffer.from(PASS))
    expect(await snapshotVolume(vol)).toEqual(expected)
    vol.close()
  })

  it('the same tree has the same backing layout (name lengths, file sizes, holes) from either writer', async () => {
    const { cipher: fromCoffer } = await fresh('layout-c')
    const vol = await createVolume(fromCoffer, Buffer.from(PASS), { scryptLogN: 10 })
    await writeSampleTree(volumeWriter(vol))
    vol.close()
    const { cipher: fromGocryptfs, mnt } = await fresh('layout-g')
    await gocryptfsInit(fromGocryptfs, passfile)
    const m = await mount(fromGocryptfs, mnt)
    await writeSampleTree(plainWriter(mnt))
    await m.unmount()
    const a = await backingLayout(fromCoffer)
    expect(a.length).toBeGreaterThan(30)
    expect(a).toEqual(await backingLayout(fromGocryptfs))
  })

  it('coffer edits a gocryptfs volume in place and gocryptfs still reads it', async () => {
    const { cipher, mnt } = await fresh('edit')
    await gocryptfsInit(cipher, passfile)
    let m = await mount(cipher, mnt)
    await writeSampleTree(plainWriter(mnt))
    await m.unmount()
    // Same edits on the plain copy and through coffer.
    const plainDir = join(work, 'edit-plain')
    await mkdir(plainDir)
    await writeSampleTree(plainWriter(plainDir))
    const vol = await openVolume(cipher, Buffer.from(PASS))
    for (const w of [plainWriter(plainDir), volumeWriter(vol)]) {
      await w.pwrite('/nested/a/b/multi.bin', 8190, bytes('edit', 10)) // partial blocks 1 and 2
      await w.truncate('/two-blocks', 4097)
      await w.pwrite('/sparse', 20_000, Buffer.from('middle of a hole'))
      await w.rename(`/${'D'.repeat(180)}`, `/${'E'.repeat(200)}`)
      await w.mkdir('/nested/new')
      await w.writeFile('/nested/new/f', bytes('new', 70_000))
    }
    vol.close()
    m = await mount(cipher, mnt)
    expect(await snapshotPlain(mnt)).toEqual(await snapshotPlain(plainDir))
    await m.unmount()
    expect((await gocryptfsFsck(cipher, passfile)).code).toBe(0)
  })
})

describe('other gocryptfs -init modes', () => {
  it('-deterministic-names and -longnamemax 100 volumes work both ways', async () => {
    for (const [name, flags] of [
      ['det', ['-deterministic-names']],
      ['lnm', ['-longnamemax', '100']],
    ] as const) {
      const { cipher, mnt } = await fresh(name)
      await gocryptfsInit(cipher, passfile, [...flags])
      const m = await mount(cipher, mnt)
      await writeFile(join(mnt, 'x'.repeat(90)), 'from gocryptfs')
      await m.unmount()
      const vol = await openVolume(cipher, Buffer.from(PASS))
      expect((await vol.readFile(`/${'x'.repeat(90)}`)).toString()).toBe('from gocryptfs')
      await vol.mkdir('/d')
      await vol.writeFile(`/d/${'y'.repeat(120)}`, Buffer.from('from coffer'))
      vol.close()
      const m2 = await mount(cipher, mnt)
      expect(await readFile(join(mnt, 'd', 'y'.repeat(120)), 'utf8')).toBe('from coffer')
      await m2.unmount()
    }
    expect((await volumeInfo(join(work, 'lnm-cipher'))).longNameMax).toBe(100)
  })

  it('-aessiv, -xchacha and -plaintextnames volumes are refused by name, not misread', async () => {
    for (const [flag, code, what] of [
      ['-aessiv', 'ERR_STORAGE_FEATURE_UNSUPPORTED', /AESSIV/],
      ['-xchacha', 'ERR_STORAGE_FEATURE_UNSUPPORTED', /XChaCha20Poly1305/],
      ['-plaintextnames', 'ERR_STORAGE_FEATURE_UNSUPPORTED', /PlaintextNames/],
    ] as const) {
      const { cipher } = await fresh(flag.slice(1))
      await gocryptfsInit(cipher, passfile, [flag])
      const err = await openVolume(cipher, Buffer.from(PASS)).catch((e: unknown) => e)
      expect(err).toMatchObject({ code })
      expect((err as Error).message).toMatch(what)
    }
  })

  it('a name that is not UTF-8 (legal in gocryptfs) is reported as skipped, not returned altered', async () => {
    const { cipher, mnt } = await fresh('latin1')
    await gocryptfsInit(cipher, passfile)
    const m = await mount(cipher, mnt)
    await writeFile(Buffer.from(`${mnt}/caf\xe9`, 'latin1'), 'latin-1 name')
    await writeFile(join(mnt, 'café'), 'utf-8 name')
    await m.unmount()
    const vol = await openVolume(cipher, Buffer.from(PASS))
    const skipped: string[] = []
    const names = await vol.readdir('/', { onSkip: (e) => skipped.push(e.reason) })
    expect(names.map((e) => e.name)).toEqual(['café'])
    expect(skipped).toEqual(['file name is not valid UTF-8'])
    vol.close()
  })

  it('a wrong passphrase on a gocryptfs volume is ERR_STORAGE_WRONG_PASSPHRASE', async () => {
    const { cipher } = await fresh('wrongpw')
    await gocryptfsInit(cipher, passfile)
    await expect(openVolume(cipher, Buffer.from(`${PASS}!`))).rejects.toMatchObject({
      code: 'ERR_STORAGE_WRONG_PASSPHRASE',
    })
  })
})
