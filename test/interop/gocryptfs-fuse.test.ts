/**
 * The coffer FUSE mount against the real Debian gocryptfs 2.3, both ways, through real kernel
 * mounts: a tree written through `coffer mount` mounts in gocryptfs with the same passphrase and
 * reads back equal (and passes `gocryptfs -fsck`); a tree written through a gocryptfs mount reads
 * back equal through `coffer mount`. The expected tree is the same steps on a plain directory
 * (long names, symlinks, hard links, empty files, multi-block files, holes, truncation).
 * Each mount is served by its own process; this process only uses async fs on it.
 */
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createVolume } from '../../lib/storage/open-volume.js'
import { startCofferMount, type CofferMount } from '../helpers/coffer-mount.js'
import { gocryptfsFsck, gocryptfsInit, mountGocryptfs, type GocryptfsMount } from '../helpers/gocryptfs.js'
import { bytes, plainWriter, snapshotPlain, writeSampleTree, type Snapshot } from '../helpers/sample-tree.js'

const PASS = 'fuse interop passphrase'
let work: string
let passfile: string
let expected: Snapshot
const cleanups: (CofferMount | GocryptfsMount)[] = []
const stopAll = async (): Promise<void> => {
  for (const m of cleanups.splice(0).reverse()) await ('stop' in m ? m.stop() : m.unmount())
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-gcfs-fuse-'))
  passfile = join(work, 'pass')
  await writeFile(passfile, `${PASS}\n`)
  await mkdir(join(work, 'plain'))
  await writeSampleTree(plainWriter(join(work, 'plain')))
  expected = await snapshotPlain(join(work, 'plain'))
})
afterEach(stopAll)
afterAll(async () => {
  await stopAll()
  await rm(work, { recursive: true, force: true })
})

async function fresh(name: string): Promise<{ cipher: string; mnt: string }> {
  const cipher = join(work, `${name}-cipher`)
  const mnt = join(work, `${name}-mnt`)
  await mkdir(cipher)
  await mkdir(mnt)
  return { cipher, mnt }
}

async function cofferMount(cipher: string, mnt: string): Promise<CofferMount> {
  const m = await startCofferMount(['--volume', cipher, mnt, '--passphrase-file', passfile], {
    env: { COFFER_MOUNT_STATE_DIR: join(work, 'state') },
  })
  cleanups.push(m)
  return m
}

async function gocryptfsMount(cipher: string, mnt: string): Promise<GocryptfsMount> {
  const m = await mountGocryptfs(cipher, mnt, passfile)
  cleanups.push(m)
  return m
}

/** Names of the backing entries with their sizes and holes: fixed by the plaintext tree alone. */
async function backingLayout(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const name of await readdir(dir)) {
    if (name === 'gocryptfs.conf') continue
    const path = join(dir, name)
    const st = await lstat(path)
    if (st.isDirectory()) out.push(`dir ${name.length}`, ...(await backingLayout(path)).map((l) => `  ${l}`))
    else if (st.isSymbolicLink()) out.push(`symlink ${name.length}`)
    else {
      const data = await readFile(path)
      const holes: number[] = []
      for (let off = 18, n = 0; off + 4128 <= data.length; off += 4128, n++)
        if (data.subarray(off, off + 4128).every((b) => b === 0)) holes.push(n)
      out.push(`file ${name.length} size:${st.size} nlink:${st.nlink} holes:${holes.join(',')}`)
    }
  }
  return out.sort()
}

describe('written through coffer mount, read through gocryptfs', () => {
  it('every file, directory, symlink and hard link reads back equal, and gocryptfs -fsck is clean', async () => {
    const { cipher, mnt } = await fresh('c2g')
    ;(await createVolume(cipher, Buffer.from(PASS), { scryptLogN: 10 })).close()
    const c = await cofferMount(cipher, mnt)
    await writeSampleTree(plainWriter(mnt))
    // 3 MiB in one write: big_writes requests of 128 KiB, 32 blocks each.
    const big = bytes('big', 3 * 1024 * 1024 + 17)
    await writeFile(join(mnt, 'big.bin'), big)
    expect(await snapshotPlain(mnt)).toEqual({ ...expected, ...(await snapshotOfBig(big)) })
    await c.stop()
    expect(c.stderr()).not.toContain('EIO')

    const g = await gocryptfsMount(cipher, mnt)
    expect(await snapshotPlain(mnt)).toEqual({ ...expected, ...(await snapshotOfBig(big)) })
    expect((await readFile(join(mnt, 'big.bin'))).equals(big)).toBe(true)
    await g.unmount()
    const fsck = await gocryptfsFsck(cipher, passfile)
    expect(fsck.stdout + fsck.stderr).toContain('no problems found')
    expect(fsck.code).toBe(0)
  })

  it('the backing layout (name lengths, sizes, holes) equals the one gocryptfs writes for the same steps', async () => {
    const { cipher: viaCoffer, mnt: m1 } = await fresh('layout-c')
    ;(await createVolume(viaCoffer, Buffer.from(PASS), { scryptLogN: 10 })).close()
    const c = await cofferMount(viaCoffer, m1)
    await writeSampleTree(plainWriter(m1))
    await c.stop()
    const { cipher: viaGocryptfs, mnt: m2 } = await fresh('layout-g')
    await gocryptfsInit(viaGocryptfs, passfile)
    const g = await gocryptfsMount(viaGocryptfs, m2)
    await writeSampleTree(plainWriter(m2))
    await g.unmount()
    expect(await backingLayout(viaCoffer)).toEqual(await backingLayout(viaGocryptfs))
  })
})

describe('written through gocryptfs, read through coffer mount', () => {
  it('every file, directory, symlink and hard link reads back equal', async () => {
    const { cipher, mnt } = await fresh('g2c')
    await gocryptfsInit(cipher, passfile)
    const g = await gocryptfsMount(cipher, mnt)
    await writeSampleTree(plainWriter(mnt))
    const big = bytes('big', 2 * 1024 * 1024 + 4095)
    await writeFile(join(mnt, 'big.bin'), big)
    await g.unmount()

    const c = await cofferMount(cipher, mnt)
    expect(await snapshotPlain(mnt)).toEqual({ ...expected, ...(await snapshotOfBig(big)) })
    // And keeps working on it: an append that gocryptfs then reads.
    await writeFile(join(mnt, 'small.txt'), 'more\n', { flag: 'a' })
    await c.stop()
    const g2 = await gocryptfsMount(cipher, mnt)
    expect(await readFile(join(mnt, 'small.txt'), 'utf8')).toBe('hello, gocryptfs\nmore\n')
    await g2.unmount()
  })
})

async function snapshotOfBig(big: Buffer): Promise<Snapshot> {
  const dir = await mkdtemp(join(work, 'big-'))
  await writeFile(join(dir, 'big.bin'), big)
  const snap = await snapshotPlain(dir)
  await rm(dir, { recursive: true })
  return { '/big.bin': snap['/big.bin']! }
}
