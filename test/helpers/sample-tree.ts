/**
 * One sample directory tree for storage interop tests, written through any of three writers (plain
 * files, a gocryptfs mount, a coffer Volume) and read back as a snapshot, so "written here, read
 * there" is one `expect(snapshot).toEqual(expected)`. The steps cover what the gocryptfs format
 * has special cases for: empty files, partial and multi-block files, holes, truncation both ways,
 * long names (files, directories, symlinks), the 175/176-byte name boundary, symlinks, hard links,
 * nested directories, renames and unlinks.
 */
import { createHash } from 'node:crypto'
import * as fs from 'node:fs/promises'
import { join } from 'node:path'
import type { Volume } from '../../lib/storage/volume.js'

export interface TreeWriter {
  mkdir(p: string): Promise<void>
  writeFile(p: string, data: Buffer): Promise<void>
  /** Writes at an offset, creating the file if needed. */
  pwrite(p: string, pos: number, data: Buffer): Promise<void>
  truncate(p: string, size: number): Promise<void>
  symlink(target: string, p: string): Promise<void>
  link(existing: string, p: string): Promise<void>
  rename(from: string, to: string): Promise<void>
  unlink(p: string): Promise<void>
  chmod(p: string, mode: number): Promise<void>
}

export type Entry =
  | { type: 'file'; sha256: string; size: number; nlink: number; mode: number }
  | { type: 'dir'; mode: number }
  | { type: 'symlink'; target: string }

export type Snapshot = Record<string, Entry>

/** Deterministic pseudo-random bytes, so failures are reproducible. */
export function bytes(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n)
  for (let i = 0, c = 0; i < n; c++) {
    const h = createHash('sha256').update(`${seed}:${c}`).digest()
    i += h.copy(out, i)
  }
  return out
}

export const LONG_FILE = 'L'.repeat(200)
export const LONG_DIR = 'D'.repeat(180)
export const LONG_LINK = 'S'.repeat(190)

export async function writeSampleTree(w: TreeWriter): Promise<void> {
  await w.mkdir('/nested')
  await w.mkdir('/nested/a')
  await w.mkdir('/nested/a/b')
  await w.writeFile('/empty', Buffer.alloc(0))
  await w.writeFile('/small.txt', Buffer.from('hello, gocryptfs\n'))
  await w.chmod('/small.txt', 0o600)
  await w.writeFile('/nested/a/b/multi.bin', bytes('multi', 3 * 4096 + 123))
  await w.pwrite('/nested/a/b/multi.bin', 4000, bytes('patch', 200)) // straddles blocks 0 and 1
  await w.writeFile('/one-block', bytes('one', 4096))
  await w.writeFile('/two-blocks', bytes('two', 8192))
  await w.pwrite('/sparse', 0, Buffer.from('head'))
  await w.pwrite('/sparse', 50_000, Buffer.from('tail')) // blocks 1..11 are holes
  await w.pwrite('/sparse-start', 12_298, Buffer.from('x')) // only the last block is real
  await w.writeFile('/grown', Buffer.from('abc'))
  await w.truncate('/grown', 10_000)
  await w.writeFile('/grown-aligned', Buffer.alloc(0))
  await w.truncate('/grown-aligned', 16_384)
  await w.writeFile('/shrunk', bytes('shrunk', 9000))
  await w.truncate('/shrunk', 5000)
  await w.writeFile('/to-empty', bytes('x', 100))
  await w.truncate('/to-empty', 0)
  await w.writeFile(`/${LONG_FILE}`, bytes('long', 5000))
  await w.mkdir(`/${LONG_DIR}`)
  await w.writeFile(`/${LONG_DIR}/inside`, Buffer.from('in a long-named dir'))
  await w.symlink('small.txt', `/${LONG_LINK}`)
  await w.writeFile(`/${'n'.repeat(175)}`, Buffer.from('175'))
  await w.writeFile(`/${'n'.repeat(176)}`, Buffer.from('176'))
  await w.writeFile('/ünïcødé ✓.txt', Buffer.from('utf-8 name'))
  await w.symlink('../small.txt', '/nested/rel-link')
  await w.symlink('/etc/hostname', '/abs-link')
  await w.symlink('x/'.repeat(500), '/long-target')
  await w.link('/small.txt', '/nested/hard')
  await w.writeFile('/before', Buffer.from('renamed'))
  await w.rename('/before', '/nested/a/after')
  await w.writeFile('/gone', Buffer.from('deleted'))
  await w.unlink('/gone')
  await w.mkdir('/empty-dir')
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

// === writers

export function plainWriter(root: string): TreeWriter {
  const at = (p: string): string => join(root, p)
  return {
    mkdir: (p) => fs.mkdir(at(p)),
    writeFile: (p, d) => fs.writeFile(at(p), d),
    async pwrite(p, pos, data) {
      const fh = await fs.open(at(p), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644)
      try {
        await fh.write(data, 0, data.length, pos)
      } finally {
        await fh.close()
      }
    },
    truncate: (p, s) => fs.truncate(at(p), s),
    symlink: (t, p) => fs.symlink(t, at(p)),
    link: (a, b) => fs.link(at(a), at(b)),
    rename: (a, b) => fs.rename(at(a), at(b)),
    unlink: (p) => fs.unlink(at(p)),
    chmod: (p, m) => fs.chmod(at(p), m),
  }
}

export function volumeWriter(vol: Volume): TreeWriter {
  return {
    mkdir: (p) => vol.mkdir(p),
    writeFile: (p, d) => vol.writeFile(p, d),
    async pwrite(p, pos, data) {
      const f = await vol.open(p, { create: true })
      try {
        await f.write(pos, data)
      } finally {
        await f.close()
      }
    },
    truncate: (p, s) => vol.truncate(p, s),
    symlink: (t, p) => vol.symlink(t, p),
    link: (a, b) => vol.link(a, b),
    rename: (a, b) => vol.rename(a, b),
    unlink: (p) => vol.unlink(p),
    chmod: (p, m) => vol.chmod(p, m),
  }
}

// === snapshots

export async function snapshotPlain(root: string, rel = ''): Promise<Snapshot> {
  const out: Snapshot = {}
  for (const name of await fs.readdir(join(root, rel))) {
    const p = `${rel}/${name}`
    const st = await fs.lstat(join(root, p))
    if (st.isSymbolicLink()) out[p] = { type: 'symlink', target: await fs.readlink(join(root, p)) }
    else if (st.isDirectory()) {
      out[p] = { type: 'dir', mode: st.mode & 0o7777 }
      Object.assign(out, await snapshotPlain(root, p))
    } else {
      const data = await fs.readFile(join(root, p))
      out[p] = { type: 'file', sha256: sha(data), size: st.size, nlink: st.nlink, mode: st.mode & 0o7777 }
    }
  }
  return out
}

export async function snapshotVolume(vol: Volume, rel = ''): Promise<Snapshot> {
  const out: Snapshot = {}
  for (const { name } of await vol.readdir(rel || '/')) {
    const p = `${rel}/${name}`
    const st = await vol.getattr(p)
    if (st.type === 'symlink') out[p] = { type: 'symlink', target: await vol.readlink(p) }
    else if (st.type === 'dir') {
      out[p] = { type: 'dir', mode: st.mode & 0o7777 }
      Object.assign(out, await snapshotVolume(vol, p))
    } else {
      const data = await vol.readFile(p)
      out[p] = { type: 'file', sha256: sha(data), size: st.size, nlink: st.nlink, mode: st.mode & 0o7777 }
    }
  }
  return out
}
