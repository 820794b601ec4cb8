import { randomBytes } from 'node:crypto'
import { constants, type Stats } from 'node:fs'
import * as fs from 'node:fs/promises'
import { join } from 'node:path'
import { CofferError } from '../util/errors.js'
import { inlineBlockCrypto, type BlockCrypto } from './block-crypto.js'
import { workerBlockCrypto } from './block-crypto-workers.js'
import { decryptBlock, encryptBlock, plainSize } from './content-cipher.js'
import { InodeCache } from './inode-cache.js'
import type { VolumeKeys } from './key-derivation.js'
import {
  CONF_NAME,
  DIRIV_LEN,
  DIRIV_NAME,
  LONGNAME_SUFFIX,
  MAX_LONGNAME_FILE_BYTES,
  NAME_MAX,
  NameCipher,
  isLongName,
  isLongNameFile,
  type CipherName,
} from './names.js'
import { OpenFile, type VolumeFile } from './open-file.js'
import { posixError } from './posix-error.js'
import { decodeRaw64, encodeRaw64 } from './raw64.js'

/** A file's attributes with the plaintext size (what `stat` through gocryptfs shows). */
export interface VolumeStat {
  readonly type: 'file' | 'dir' | 'symlink' | 'other'
  readonly mode: number
  /** Plaintext bytes: file contents, or the length of a symlink's target. */
  readonly size: number
  readonly nlink: number
  readonly uid: number
  readonly gid: number
  readonly ino: number
  readonly dev: number
  readonly blocks: number
  readonly atimeMs: number
  readonly mtimeMs: number
  readonly ctimeMs: number
}

export interface VolumeStatfs {
  readonly bsize: number
  readonly blocks: number
  readonly bfree: number
  readonly bavail: number
  readonly files: number
  readonly ffree: number
  readonly namemax: number
}

export interface DirEntry {
  readonly name: string
  readonly type: VolumeStat['type']
}

export interface OpenOptions {
  /** Create the file if it does not exist (mode `mode`). */
  create?: boolean
  /** With `create`: fail with EEXIST if it exists. */
  exclusive?: boolean
  /** Truncate to 0 on open. */
  truncate?: boolean
  /** Default 0o644. */
  mode?: number
}

/** An entry the Volume could not decode while listing a directory (fsck reports these). */
export interface SkippedEntry {
  readonly dir: string
  readonly backingName: string
  readonly reason: string
}

/**
 * Plaintext operations over a gocryptfs v2 backing directory, without FUSE. Paths are plaintext,
 * absolute within the volume (`/a/b`), as the libfuse path API passes them. Metadata (modes,
 * owners, times, link counts) passes through to the backing entries, as in gocryptfs.
 *
 * Lifecycle: `openVolume`/`createVolume` (lib/storage/open-volume.ts) → operations → `close()`,
 * which wipes the keys. Not safe against other writers of the same backing directory (gocryptfs
 * mounted on it at the same time), like gocryptfs itself.
 */
export interface Volume {
  readonly backingDir: string
  getattr(path: string): Promise<VolumeStat>
  readdir(path: string, o?: { onSkip?: (e: SkippedEntry) => void }): Promise<DirEntry[]>
  open(path: string, o?: OpenOptions): Promise<VolumeFile>
  truncate(path: string, size: number): Promise<void>
  mkdir(path: string, mode?: number): Promise<void>
  rmdir(path: string): Promise<void>
  unlink(path: string): Promise<void>
  rename(from: string, to: string): Promise<void>
  link(existing: string, newPath: string): Promise<void>
  symlink(target: string, path: string): Promise<void>
  readlink(path: string): Promise<string>
  chmod(path: string, mode: number): Promise<void>
  statfs(): Promise<VolumeStatfs>
  chown(path: string, uid: number, gid: number): Promise<void>
  /** Times as Dates or seconds since the epoch; undefined keeps that time as it is. */
  utimes(path: string, atime: Date | number | undefined, mtime: Date | number | undefined): Promise<void>
  /** Whole-file helpers for tools and tests. */
  readFile(path: string): Promise<Buffer>
  writeFile(path: string, data: Uint8Array, mode?: number): Promise<void>
  /**
   * Splits the AES-GCM of large reads and writes over `threads` worker threads from now until
   * `close` (the FUSE server does this; block-crypto-workers.ts). Files opened earlier stay inline.
   */
  useCryptoThreads(threads: number): void
  /**
   * Waits for the write-behind in flight (worker threads only, open-file.ts), so that what comes
   * next sees the backing files as written. The FUSE server calls it before every other request.
   */
  settle(): void
  /** Whether a write-behind has not been settled yet (its bytes may not be in the backing file). */
  writeBehindPending(): boolean
  /**
   * The content key, for a reader outside this object that follows the same block rules (the FUSE
   * binding's native reads copy it). Wiped by `close`; never kept by the caller.
   */
  contentKey(): Uint8Array
  close(): void
}

interface Resolved {
  /** Backing directory holding the entry. */
  readonly parent: string
  readonly name: CipherName
  /** Backing path of the entry. */
  readonly backing: string
}

/** Splits `/a/b` into checked components; `/` is []. */
function components(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '')
  for (const p of parts)
    if (p === '.' || p === '..')
      throw new CofferError('ERR_STORAGE_NAME_INVALID', `path ${JSON.stringify(path)} has . or .. in it`)
  return parts
}

function typeOf(st: Stats): VolumeStat['type'] {
  return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other'
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException | undefined)?.code ?? '')
}

export class GocryptfsVolume implements Volume {
  private readonly names: NameCipher
  private readonly dirIVs = new Map<string, Buffer>()
  private readonly inodes = new InodeCache()
  private crypto: BlockCrypto

  constructor(
    readonly backingDir: string,
    private readonly keys: VolumeKeys,
    private readonly opts: { dirIV: boolean; longNameMax: number },
  ) {
    this.names = new NameCipher(keys.names, opts.longNameMax)
    this.crypto = inlineBlockCrypto(keys.content)
  }

  useCryptoThreads(threads: number): void {
    this.crypto.close()
    this.crypto = workerBlockCrypto(this.keys.content, threads)
  }

  settle(): void {
    this.crypto.settle()
  }

  writeBehindPending(): boolean {
    return this.crypto.pending()
  }

  contentKey(): Uint8Array {
    return this.keys.content
  }

  close(): void {
    this.names.clear()
    this.crypto.close()
    this.keys.content.fill(0)
    this.keys.names.fill(0)
  }

  // === path resolution

  /** The IV names in backing directory `dir` are encrypted with (its gocryptfs.diriv). */
  private async dirIV(dir: string): Promise<Buffer> {
    if (!this.opts.dirIV) return Buffer.alloc(DIRIV_LEN)
    const cached = this.dirIVs.get(dir)
    if (cached) return cached
    const fh = await fs.open(join(dir, DIRIV_NAME), constants.O_RDONLY | constants.O_NOFOLLOW)
    let iv: Buffer
    try {
      iv = Buffer.alloc(DIRIV_LEN + 1)
      const { bytesRead } = await fh.read(iv, 0, iv.length, 0)
      iv = iv.subarray(0, bytesRead)
    } finally {
      await fh.close()
    }
    // diriv.go: exactly 16 bytes, and not all zero.
    if (iv.length !== DIRIV_LEN || iv.every((b) => b === 0))
      throw new CofferError('ERR_STORAGE_CORRUPT', 'corrupt gocryptfs.diriv')
    this.dirIVs.set(dir, iv)
    return iv
  }

  private forgetDirIVs(prefix: string): void {
    for (const k of this.dirIVs.keys()) if (k === prefix || k.startsWith(`${prefix}/`)) this.dirIVs.delete(k)
  }

  private async backingDirOf(parts: string[]): Promise<string> {
    let dir = this.backingDir
    for (const part of parts) dir = join(dir, this.names.encrypt(part, await this.dirIV(dir)).backing)
    return dir
  }

  private async resolve(path: string): Promise<Resolved> {
    const parts = components(path)
    const last = parts.pop()
    if (last === undefined) throw posixError('EINVAL', 'resolve', path)
    const parent = await this.backingDirOf(parts)
    const name = this.names.encrypt(last, await this.dirIV(parent))
    return { parent, name, backing: join(parent, name.backing) }
  }

  private async backingOf(path: string): Promise<string> {
    return components(path).length === 0 ? this.backingDir : (await this.resolve(path)).backing
  }

  /** Writes the `.name` file of a long name; returns whether this call created it. */
  private async writeLongName(r: Resolved): Promise<boolean> {
    if (!r.name.long) return false
    try {
      await fs.writeFile(r.backing + LONGNAME_SUFFIX, r.name.encoded, { flag: 'wx', mode: 0o444 })
      return true
    } catch (err) {
      // Same hash ⇒ same encoded name: an existing .name (a hard link, a rename target) is fine.
      if (isErrno(err, 'EEXIST')) return false
      throw err
    }
  }

  private async removeLongName(r: Resolved): Promise<void> {
    if (r.name.long) await fs.rm(r.backing + LONGNAME_SUFFIX, { force: true })
  }

  /** Runs `create`, removing a `.name` file it left behind if it fails. */
  private async withLongName(r: Resolved, create: () => Promise<void>): Promise<void> {
    const created = await this.writeLongName(r)
    try {
      await create()
    } catch (err) {
      if (created) await fs.rm(r.backing + LONGNAME_SUFFIX, { force: true })
      throw err
    }
  }

  // === attributes

  async getattr(path: string): Promise<VolumeStat> {
    const backing = await this.backingOf(path)
    const st = await fs.lstat(backing)
    const type = typeOf(st)
    let size = st.size
    if (type === 'file') size = plainSize(st.size)
    else if (type === 'symlink')
      size = Buffer.byteLength(await this.decryptTarget(await fs.readlink(backing)))
    return {
      type,
      mode: st.mode,
      size,
      nlink: st.nlink,
      uid: st.uid,
      gid: st.gid,
      ino: st.ino,
      dev: st.dev,
      blocks: st.blocks,
      atimeMs: st.atimeMs,
      mtimeMs: st.mtimeMs,
      ctimeMs: st.ctimeMs,
    }
  }

  /** Free space of the backing file system (FUSE statfs); names are limited to 255 plaintext bytes. */
  async statfs(): Promise<VolumeStatfs> {
    const st = await fs.statfs(this.backingDir)
    return {
      bsize: st.bsize,
      blocks: st.blocks,
      bfree: st.bfree,
      bavail: st.bavail,
      files: st.files,
      ffree: st.ffree,
      namemax: NAME_MAX,
    }
  }

  async chmod(path: string, mode: number): Promise<void> {
    await fs.chmod(await this.backingOf(path), mode)
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    await fs.lchown(await this.backingOf(path), uid, gid)
  }

  async utimes(
    path: string,
    atime: Date | number | undefined,
    mtime: Date | number | undefined,
  ): Promise<void> {
    const backing = await this.backingOf(path)
    if (atime === undefined || mtime === undefined) {
      // lutimes has no UTIME_OMIT: set the other time to what it is now (as a double of seconds,
      // which keeps it to about a microsecond).
      const st = await fs.lstat(backing, { bigint: true })
      atime ??= Number(st.atimeNs) / 1e9
      mtime ??= Number(st.mtimeNs) / 1e9
    }
    await fs.lutimes(backing, atime, mtime)
  }

  // === directories

  async readdir(path: string, o: { onSkip?: (e: SkippedEntry) => void } = {}): Promise<DirEntry[]> {
    const dir = await this.backingOf(path)
    const iv = await this.dirIV(dir)
    const isRoot = dir === this.backingDir
    const out: DirEntry[] = []
    for (const d of await fs.readdir(dir, { withFileTypes: true })) {
      const n = d.name
      if (n === DIRIV_NAME || (isRoot && n === CONF_NAME) || isLongNameFile(n)) continue
      const type: DirEntry['type'] = d.isFile()
        ? 'file'
        : d.isDirectory()
          ? 'dir'
          : d.isSymbolicLink()
            ? 'symlink'
            : 'other'
      try {
        const encoded = isLongName(n) ? await this.readLongName(dir, n) : n
        out.push({ name: this.names.decrypt(encoded, iv), type })
      } catch (err) {
        // gocryptfs hides undecodable entries (and logs them); fsck wants to hear about them.
        o.onSkip?.({ dir: path, backingName: n, reason: err instanceof Error ? err.message : String(err) })
      }
    }
    return out
  }

  private async readLongName(dir: string, backingName: string): Promise<string> {
    const fh = await fs.open(
      join(dir, backingName + LONGNAME_SUFFIX),
      constants.O_RDONLY | constants.O_NOFOLLOW,
    )
    try {
      const buf = Buffer.alloc(MAX_LONGNAME_FILE_BYTES + 1)
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
      if (bytesRead > MAX_LONGNAME_FILE_BYTES)
        throw new CofferError('ERR_STORAGE_CORRUPT', 'long-name file too large')
      const encoded = buf.subarray(0, bytesRead).toString('ascii')
      if (!NameCipher.longNameMatches(backingName, encoded))
        throw new CofferError('ERR_STORAGE_CORRUPT', 'long-name file does not match its hash')
      return encoded
    } finally {
      await fh.close()
    }
  }

  async mkdir(path: string, mode = 0o755): Promise<void> {
    const r = await this.resolve(path)
    await this.withLongName(r, async () => {
      // Owner rwx while the diriv goes in; the requested mode comes last (gocryptfs Mkdir).
      await fs.mkdir(r.backing, { mode: mode | 0o700 })
      try {
        if (this.opts.dirIV)
          await fs.writeFile(join(r.backing, DIRIV_NAME), randomBytes(DIRIV_LEN), { flag: 'wx', mode: 0o444 })
        await fs.chmod(r.backing, mode & 0o7777)
      } catch (err) {
        await fs.rm(r.backing, { recursive: true, force: true })
        throw err
      }
    })
  }

  async rmdir(path: string): Promise<void> {
    const r = await this.resolve(path)
    // lstat first: readdir would follow a backing symlink.
    if (!(await fs.lstat(r.backing)).isDirectory()) throw posixError('ENOTDIR', 'rmdir', path)
    const entries = await fs.readdir(r.backing)
    if (entries.some((e) => e !== DIRIV_NAME)) throw posixError('ENOTEMPTY', 'rmdir', path)
    const ivPath = join(r.backing, DIRIV_NAME)
    const iv = entries.length ? await fs.readFile(ivPath) : undefined
    if (iv) await fs.unlink(ivPath)
    try {
      await fs.rmdir(r.backing)
    } catch (err) {
      // Put the diriv back so the directory stays readable (gocryptfs rolls back too).
      if (iv) await fs.writeFile(ivPath, iv, { flag: 'wx', mode: 0o444 }).catch(() => undefined)
      throw err
    }
    this.forgetDirIVs(r.backing)
    await this.removeLongName(r)
  }

  // === entries

  async unlink(path: string): Promise<void> {
    const r = await this.resolve(path)
    const st = await fs.lstat(r.backing)
    if (st.isDirectory()) throw posixError('EISDIR', 'unlink', path)
    await fs.unlink(r.backing)
    await this.removeLongName(r)
  }

  async rename(from: string, to: string): Promise<void> {
    // rename(2) resolves both parent directories, then the source entry: errors come in that order.
    const src = await this.resolve(from)
    const dst = await this.resolve(to)
    await fs.lstat(src.backing)
    if (src.backing === dst.backing) return
    await this.withLongName(dst, async () => {
      try {
        await fs.rename(src.backing, dst.backing)
      } catch (err) {
        // An empty plaintext directory still holds its diriv, so the kernel calls it non-empty.
        if (!isErrno(err, 'ENOTEMPTY', 'EEXIST')) throw err
        await this.rmdir(to)
        await this.writeLongName(dst)
        await fs.rename(src.backing, dst.backing)
      }
    })
    this.forgetDirIVs(src.backing)
    this.forgetDirIVs(dst.backing)
    await this.removeLongName(src)
  }

  async link(existing: string, newPath: string): Promise<void> {
    // link(2) looks the existing path up completely before the new one's parent.
    const src = await this.resolve(existing)
    await fs.lstat(src.backing)
    const dst = await this.resolve(newPath)
    await this.withLongName(dst, () => fs.link(src.backing, dst.backing))
  }

  async symlink(target: string, path: string): Promise<void> {
    const r = await this.resolve(path)
    const encrypted = encodeRaw64(encryptBlock(this.keys.content, Buffer.from(target, 'utf8'), 0, undefined))
    await this.withLongName(r, () => fs.symlink(encrypted, r.backing))
  }

  async readlink(path: string): Promise<string> {
    return this.decryptTarget(await fs.readlink((await this.resolve(path)).backing))
  }

  /** A symlink target is one content block: block 0, no file ID (gocryptfs node.go Readlink). */
  private async decryptTarget(stored: string): Promise<string> {
    let bin: Buffer
    try {
      bin = decodeRaw64(stored)
    } catch (cause) {
      throw new CofferError('ERR_STORAGE_CORRUPT', 'corrupt symlink target', { cause })
    }
    return decryptBlock(this.keys.content, bin, 0, undefined).toString('utf8')
  }

  // === file contents

  async open(path: string, o: OpenOptions = {}): Promise<VolumeFile> {
    const r = await this.resolve(path)
    // Always read-write: writes are read-modify-write of whole blocks (gocryptfs mangleOpenFlags).
    const base = constants.O_RDWR | constants.O_NOFOLLOW
    let fh: fs.FileHandle
    if (o.create) {
      const flags = base | constants.O_CREAT | (o.exclusive ? constants.O_EXCL : 0)
      let opened: fs.FileHandle | undefined
      await this.withLongName(r, async () => {
        opened = await fs.open(r.backing, flags, o.mode ?? 0o644)
      })
      fh = opened!
    } else {
      try {
        fh = await fs.open(r.backing, base)
      } catch (err) {
        // A read-only backing file (mode 0444) can still be read.
        if (!isErrno(err, 'EACCES', 'EPERM', 'EROFS')) throw err
        fh = await fs.open(r.backing, constants.O_RDONLY | constants.O_NOFOLLOW)
      }
    }
    let file: OpenFile | undefined
    try {
      const st = await fh.stat()
      if (st.isDirectory()) throw posixError('EISDIR', 'open', path)
      if (!st.isFile()) throw posixError('EINVAL', 'open', path)
      file = new OpenFile(fh, this.crypto, `${st.dev}:${st.ino}`, this.inodes)
      if (o.truncate) await file.truncate(0)
      return file
    } catch (err) {
      await (file ? file.close() : fh.close())
      throw err
    }
  }

  async truncate(path: string, size: number): Promise<void> {
    const f = await this.open(path)
    try {
      await f.truncate(size)
    } finally {
      await f.close()
    }
  }

  async readFile(path: string): Promise<Buffer> {
    const f = await this.open(path)
    try {
      return await f.read(0, await f.size())
    } finally {
      await f.close()
    }
  }

  async writeFile(path: string, data: Uint8Array, mode = 0o644): Promise<void> {
    const f = await this.open(path, { create: true, truncate: true, mode })
    try {
      await f.write(0, data)
    } finally {
      await f.close()
    }
  }
}
