/**
 * Streams one layer (an uncompressed tar) into a directory with safe semantics
 * (image-spec layer.md; c/storage pkg/archive; spec sheet ocicrypt-and-signing.md §5).
 *
 * Entries are handled one at a time, in archive order, and file content is streamed straight to
 * disk: memory stays bounded whatever the layer size. Every write is checked by `safe-path.ts`:
 * no '..', no symlink on the way, O_NOFOLLOW|O_EXCL on the final open, so nothing is ever written
 * outside `dest` however the archive is crafted. Symlink targets are stored as given (absolute or
 * with '..'): they are never followed while unpacking.
 *
 * Attribute order follows c/storage: lchown (root only) → chmod with setuid/setgid/sticky (chown
 * clears setuid) → times; directory mtimes last, deepest first, since creating children changes them.
 */
import { constants } from 'node:fs'
import {
  chmod,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  open,
  rm,
  type FileHandle,
  symlink,
  utimes,
  readdir,
} from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { Readable } from 'node:stream'
import { extract, type Extract, type Header } from 'tar-stream'
import { CofferError } from '../../util/errors.js'
import { writevAllSync } from '../../util/writev-all.js'
import {
  MAX_LAYER_ENTRIES,
  MAX_LAYER_ENTRY_BYTES,
  MAX_LAYER_PATH_BYTES,
  MAX_LAYER_TOTAL_BYTES,
} from '../../util/limits.js'
import { LayerDurability } from './durability.js'
import { ensureNoSymlinkOnPath, resolveInside, sanitizeEntryPath, setDirTimes } from './safe-path.js'
import { makeDevice, makeFifo, OVERLAY_OPAQUE_XATTR, setXattr } from './special-files.js'
import type { UnpackOptions, UnpackResult, UnpackWarning, UnpackWarningCode } from './types.js'

const WHITEOUT_PREFIX = '.wh.'
const OPAQUE_MARKER = '.wh..wh..opq'
const AUFS_META_PREFIX = '.wh..wh.'
const XATTR_PAX_PREFIX = 'SCHILY.xattr.'
/** Bytes of file content gathered into one writev(2): fewer hand-offs to the libuv pool. */
const WRITE_BATCH = 256 * 1024
/** A durable file's content between two early writebacks (`fdatasync` in the background). */
const WRITEBACK_BYTES = 8 * 1024 * 1024

/** tar-stream's header; `type` is null at run time for a typeflag it does not know. */
type EntryHeader = Omit<Header, 'type' | 'pax'> & {
  type: Header['type'] | null
  pax?: Record<string, string> | null
}

/** The slice of a tar-stream (streamx) entry stream the unpacker uses. */
type EntryBody = AsyncIterable<Uint8Array> & {
  resume(): unknown
  on(ev: 'error', fn: (err: Error) => void): unknown
}

/** Unpacks the tar stream `source` into `dest` (which must exist). See `UnpackOptions`. */
export async function unpackLayer(source: Readable, dest: string, o: UnpackOptions): Promise<UnpackResult> {
  const u = new LayerUnpacker(dest, o)
  const tar = extract()
  // Leaving the read loop early (abort, a refused entry) destroys the source, which then emits an
  // AbortError after the loop's own listener is gone; the loop already reported what matters, so
  // that late event must not become an uncaught exception that kills the process.
  source.on('error', () => undefined)
  // A failing source (a digest check, a network error, an abort) must also end the entry loop.
  let sourceFailure: SourceFailure | undefined
  const feeding = feed(source, tar, o.signal).catch((err: unknown) => {
    if (err instanceof SourceFailure) sourceFailure = err
    tar.destroy(err instanceof SourceFailure ? new Error('source failed') : (err as Error))
    throw err
  })
  // Awaited below; this handler only keeps an early failure from counting as unhandled meanwhile.
  feeding.catch(() => undefined)
  try {
    for await (const entry of tar) {
      await u.entry(entry.header as EntryHeader, entry as unknown as EntryBody)
    }
  } catch (err) {
    tar.destroy()
    source.destroy()
    await feeding.catch(() => undefined)
    await u.abandon()
    throw asTarError(sourceFailure ?? err)
  }
  try {
    await feeding
    await u.finish()
  } catch (err) {
    await u.abandon()
    throw asTarError(err)
  }
  return u.result
}

/**
 * Writes `source` into tar-stream's (streamx) extractor with backpressure. Hand-written because
 * Node's `pipeline` does not reliably treat a streamx Writable as a destination.
 */
async function feed(source: Readable, tar: Extract, signal?: AbortSignal): Promise<void> {
  const failed = new Promise<never>((_, reject) => {
    tar.on('error', reject)
    tar.once('close', () => reject(new CofferError('ERR_IMAGE_TAR_INVALID', 'tar stream closed early')))
  })
  failed.catch(() => undefined)
  const canceled = (): CofferError =>
    new CofferError('ERR_CANCELED', 'unpack canceled', { cause: signal?.reason })
  // Destroying the source also wakes a read that waits on a stalled network.
  const onAbort = (): void => void source.destroy(canceled())
  // Never start reading once canceled: leaving a fresh iterator early makes Node destroy the source
  // with an AbortError of its own.
  if (signal?.aborted) {
    source.destroy(canceled())
    throw canceled()
  }
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    for await (const chunk of source as AsyncIterable<Uint8Array>) {
      if (signal?.aborted) throw canceled()
      if (!tar.write(chunk))
        await Promise.race([new Promise<void>((r) => tar.once('drain', () => r())), failed])
    }
  } catch (err) {
    if (signal?.aborted) throw canceled()
    throw err instanceof CofferError || tar.destroyed ? err : new SourceFailure(err)
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
  if (signal?.aborted) throw canceled()
  const finished = new Promise<void>((r) => tar.once('finish', () => r()))
  ;(tar as unknown as { end(): void }).end()
  await Promise.race([finished, failed])
}

/** An error of the caller's source stream: passed through as it is, never relabelled as a tar error. */
class SourceFailure {
  constructor(readonly cause: unknown) {}
}

/** tar-stream's own parse errors are plain Errors; give them our code. */
function asTarError(err: unknown): unknown {
  if (err instanceof SourceFailure) return err.cause
  if (err instanceof CofferError) return err
  const e = err as NodeJS.ErrnoException
  if (e?.name === 'AbortError') return new CofferError('ERR_CANCELED', 'unpack canceled', { cause: err })
  // errno-style failures (ENOSPC, EACCES) stay as they are; everything else came from the parser.
  if (e instanceof Error && typeof e.errno !== 'number' && e.syscall === undefined) {
    return new CofferError('ERR_IMAGE_TAR_INVALID', `malformed tar: ${e.message}`, { cause: err })
  }
  return err
}

class LayerUnpacker {
  readonly result: UnpackResult = {
    entries: 0,
    bytes: 0,
    whiteouts: [],
    opaqueDirs: [],
    externalLinks: [],
    implicitDirs: [],
    xattrs: {},
    warnings: [],
  }
  private readonly isRoot = process.getuid?.() === 0
  private readonly maxEntrySize: number
  private readonly maxTotalSize: number
  private readonly maxEntries: number
  /** Paths this layer created (for opaque dirs and self-whiteouts). */
  private readonly created = new Set<string>()
  private readonly dirTimes: Array<{ rel: string; mtime: Date }> = []
  /**
   * Times of directories from lower layers whose children this layer changes: restored at the end,
   * as umoci does (tar_extract.go keeps a parent's mtime), since only a directory entry of this
   * layer may change a directory's attributes.
   */
  private readonly keptTimes = new Map<string, { atime: Date; mtime: Date }>()
  private readonly durability: LayerDurability | undefined

  constructor(
    private readonly root: string,
    private readonly o: UnpackOptions,
  ) {
    this.maxEntrySize = o.maxEntrySize ?? MAX_LAYER_ENTRY_BYTES
    this.maxTotalSize = o.maxTotalSize ?? MAX_LAYER_TOTAL_BYTES
    this.maxEntries = o.maxEntries ?? MAX_LAYER_ENTRIES
    this.durability = o.durable ? new LayerDurability(root) : undefined
  }

  async entry(h: EntryHeader, body: EntryBody): Promise<void> {
    // The parser reports a truncated body on the entry stream too; the loop sees it through the
    // extractor, so an unlistened 'error' event here must not become an uncaught exception.
    body.on('error', () => undefined)
    try {
      await this.handle(h, body)
    } finally {
      // Drain whatever the handler did not consume, so tar-stream moves to the next header.
      body.resume()
    }
  }

  private async handle(h: EntryHeader, body: EntryBody): Promise<void> {
    if (++this.result.entries > this.maxEntries) {
      throw new CofferError('ERR_IMAGE_LAYER_TOO_LARGE', `layer has more than ${this.maxEntries} entries`)
    }
    const { path, strippedRoot } = sanitizeEntryPath(h.name)
    if (strippedRoot)
      this.warn('ABSOLUTE_NAME_STRIPPED', path, `leading '/' removed from ${JSON.stringify(h.name)}`)
    const type = h.type
    if (type === null || type === undefined) {
      throw new CofferError('ERR_IMAGE_TAR_INVALID', `${JSON.stringify(path)}: unsupported tar entry type`)
    }
    if (path === '') {
      this.warn('ROOT_ENTRY_IGNORED', '', 'entry for the root directory ignored')
      return
    }

    const base = posix.basename(path)
    if (base.startsWith(WHITEOUT_PREFIX)) return this.whiteout(path, base)

    const abs = await this.prepareParent(path)
    const existing = await lstatOrNull(abs)

    switch (type) {
      case 'directory': {
        this.durability?.dirChanged(path) // its attributes are set at the end
        if (existing?.isDirectory()) break // both directories: only attributes change
        if (existing) await rm(abs, { recursive: true, force: true })
        await mkdir(abs, { mode: 0o700 })
        break
      }
      case 'file':
      case 'contiguous-file': {
        const size = h.size ?? 0
        if (size > this.maxEntrySize) {
          throw new CofferError(
            'ERR_IMAGE_LAYER_TOO_LARGE',
            `${JSON.stringify(path)}: ${size} bytes > entry limit`,
          )
        }
        if (this.result.bytes + size > this.maxTotalSize) {
          throw new CofferError(
            'ERR_IMAGE_LAYER_TOO_LARGE',
            `layer content exceeds ${this.maxTotalSize} bytes`,
          )
        }
        if (existing) await rm(abs, { recursive: true, force: true })
        const fh = await this.writeFile(abs, body)
        this.result.bytes += size
        try {
          this.created.add(path)
          this.recordXattrs(path, h)
          await this.applyAttributes(abs, path, h, type)
        } catch (err) {
          await fh.close()
          throw err
        }
        if (this.durability) await this.durability.syncAndClose(fh)
        else await fh.close()
        return
      }
      case 'symlink': {
        const target = h.linkname ?? ''
        checkLinkName(path, target)
        if (existing) await rm(abs, { recursive: true, force: true })
        await symlink(target, abs)
        break
      }
      case 'link': {
        if (await this.hardlink(path, abs, h.linkname ?? '', existing !== null)) this.created.add(path)
        return // a hardlink shares its target's inode and attributes
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        if (!this.o.allowDevices || (type !== 'fifo' && !this.isRoot)) {
          this.warn(
            'DEVICE_SKIPPED',
            path,
            `${type} not created (${this.isRoot ? 'allowDevices is off' : 'not root'})`,
          )
          return
        }
        if (existing) await rm(abs, { recursive: true, force: true })
        if (type === 'fifo') await makeFifo(abs)
        else await makeDevice(abs, type === 'block-device' ? 'b' : 'c', h.devmajor ?? 0, h.devminor ?? 0)
        break
      }
      default:
        throw new CofferError(
          'ERR_IMAGE_TAR_INVALID',
          `${JSON.stringify(path)}: unsupported tar entry type ${type}`,
        )
    }
    this.created.add(path)
    this.recordXattrs(path, h)
    await this.applyAttributes(abs, path, h, type)
  }

  /** Creates missing parents (0755, like umoci and c/storage) after refusing symlinks on the way. */
  private async prepareParent(path: string): Promise<string> {
    const abs = resolveInside(this.root, path)
    const parts = path.split('/')
    if (this.durability)
      for (let i = 0; i < parts.length; i++) this.durability.dirChanged(parts.slice(0, i).join('/'))
    const existing = await ensureNoSymlinkOnPath(this.root, path)
    await this.keepTimes(parts.slice(0, existing).join('/'))
    let cur = join(this.root, ...parts.slice(0, existing))
    for (let i = existing; i < parts.length - 1; i++) {
      cur = join(cur, parts[i] as string)
      await mkdir(cur, { mode: 0o755 })
      this.result.implicitDirs.push(parts.slice(0, i + 1).join('/'))
    }
    return abs
  }

  /** Remembers a lower-layer directory's times before this layer changes its children. */
  private async keepTimes(rel: string): Promise<void> {
    if (this.o.whiteouts !== 'apply' || this.created.has(rel)) return
    if (this.keptTimes.has(rel)) return
    const st = await lstatOrNull(resolveInside(this.root, rel))
    if (st?.isDirectory()) this.keptTimes.set(rel, { atime: st.atime, mtime: st.mtime })
  }

  /**
   * O_EXCL|O_NOFOLLOW: the path was just emptied; a symlink planted there would make this fail.
   * Chunks arrive as the decompressor cut them (many of a few KiB); they are gathered into one
   * writev(2) of WRITE_BATCH bytes or more, with at most one batch in flight while the next gathers.
   * Returns the open handle: the caller sets attributes, then closes (or syncs) it.
   */
  private async writeFile(abs: string, body: EntryBody): Promise<FileHandle> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
    const fh = await open(abs, flags, 0o600)
    try {
      let batch: Uint8Array[] = []
      let bytes = 0
      let writing: Promise<unknown> = Promise.resolve()
      // Durable layers: writeback starts while the file is still being written, so the fsync at
      // its end finds little left (the kernel's own writeback would wait for gigabytes of dirty
      // pages). Errors are the final fsync's to report.
      let written = 0
      let flushing: Promise<void> | undefined
      const writeback = (n: number): void => {
        if (!this.durability || (written += n) < WRITEBACK_BYTES || flushing) return
        written = 0
        flushing = fh.datasync().then(
          () => void (flushing = undefined),
          () => void (flushing = undefined),
        )
      }
      for await (const chunk of body) {
        batch.push(chunk)
        bytes += chunk.length
        if (bytes < WRITE_BATCH) continue
        if (this.o.blockingWrites) writevAllSync(fh.fd, batch)
        else {
          await writing
          writing = fh.writev(batch)
          writing.catch(() => undefined) // awaited before the next batch; handled until then
        }
        writeback(bytes)
        batch = []
        bytes = 0
      }
      await writing
      await flushing
      if (batch.length > 0) {
        if (this.o.blockingWrites) writevAllSync(fh.fd, batch)
        else await fh.writev(batch)
      }
    } catch (err) {
      await fh.close()
      throw err
    }
    return fh
  }

  /**
   * A hardlink's linkname is relative to the image root (not the link's directory) and may name a
   * file of a lower layer. It must not be a directory, must not be reached through a symlink, and
   * must exist, except in overlay/record modes where a missing target is a lower layer's file:
   * that link is recorded for the materializer. Returns whether a link was made.
   */
  private async hardlink(path: string, abs: string, linkname: string, exists: boolean): Promise<boolean> {
    const target = sanitizeEntryPath(linkname).path
    if (target === '' || target === path) {
      throw new CofferError('ERR_IMAGE_HARDLINK_INVALID', `${JSON.stringify(path)}: bad hardlink target`)
    }
    const targetAbs = resolveInside(this.root, target)
    await ensureNoSymlinkOnPath(this.root, target)
    const st = await lstatOrNull(targetAbs)
    if (st === null) {
      if (this.o.whiteouts === 'apply') {
        throw new CofferError(
          'ERR_IMAGE_HARDLINK_INVALID',
          `${JSON.stringify(path)}: target ${JSON.stringify(target)} missing`,
        )
      }
      this.result.externalLinks.push({ path, target })
      return false
    }
    if (st.isDirectory()) {
      throw new CofferError('ERR_IMAGE_HARDLINK_INVALID', `${JSON.stringify(path)}: target is a directory`)
    }
    if (exists) await rm(abs, { recursive: true, force: true })
    // link(2) does not follow a symlink target on Linux: a link to a symlink links the symlink itself.
    await link(targetAbs, abs)
    return true
  }

  private async whiteout(path: string, base: string): Promise<void> {
    const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path)
    if (base === OPAQUE_MARKER) {
      this.result.opaqueDirs.push(dir)
      if (this.o.whiteouts === 'overlay') await this.prepareParent(path)
      return
    }
    if (base.startsWith(AUFS_META_PREFIX)) {
      this.warn('AUFS_METADATA_SKIPPED', path, 'AUFS metadata skipped')
      return
    }
    const name = base.slice(WHITEOUT_PREFIX.length)
    if (name === '' || name === '.' || name === '..') {
      throw new CofferError('ERR_IMAGE_TAR_INVALID', `${JSON.stringify(path)}: invalid whiteout`)
    }
    const target = dir === '' ? name : `${dir}/${name}`
    this.result.whiteouts.push(target)
    if (this.o.whiteouts === 'record') return
    const abs = resolveInside(this.root, target)
    if (this.created.has(target)) {
      this.warn('WHITEOUT_OF_OWN_ENTRY', target, 'whiteout of an entry of the same layer ignored')
      return
    }
    if (this.o.whiteouts === 'apply') {
      try {
        await ensureNoSymlinkOnPath(this.root, target)
      } catch (err) {
        // A parent that is a file or symlink means there is nothing below it to delete.
        if (err instanceof CofferError && err.code === 'ERR_IMAGE_UNSAFE_PATH') return
        throw err
      }
      if (await lstatOrNull(abs)) await this.keepTimes(dir)
      await rm(abs, { recursive: true, force: true })
      return
    }
    // overlay: a char device 0:0 hides the lower file (overlayfs whiteout format).
    if (!this.isRoot) {
      this.warn('WHITEOUT_NOT_MATERIALIZED', target, 'whiteout recorded only (mknod needs root)')
      return
    }
    await this.prepareParent(target)
    const existing = await lstatOrNull(abs)
    if (existing) await rm(abs, { recursive: true, force: true })
    await makeDevice(abs, 'c', 0, 0)
  }

  private recordXattrs(path: string, h: EntryHeader): void {
    if (!h.pax) return
    for (const [k, v] of Object.entries(h.pax)) {
      if (!k.startsWith(XATTR_PAX_PREFIX)) continue
      const name = k.slice(XATTR_PAX_PREFIX.length)
      ;(this.result.xattrs[path] ??= {})[name] = Buffer.from(String(v), 'utf8').toString('base64')
      this.warn('XATTR_NOT_APPLIED', path, `xattr ${name} recorded, not applied`)
    }
  }

  private async applyAttributes(abs: string, path: string, h: EntryHeader, type: string): Promise<void> {
    const uid = paxInt(h.pax?.uid) ?? h.uid ?? 0
    const gid = paxInt(h.pax?.gid) ?? h.gid ?? 0
    const mtime = paxTime(h.pax?.mtime) ?? h.mtime ?? new Date(0)
    if (this.isRoot) await lchown(abs, uid, gid)
    if (type === 'symlink') {
      await lutimes(abs, mtime, mtime)
      return
    }
    await chmod(abs, (h.mode ?? 0o644) & 0o7777)
    if (type === 'directory') this.dirTimes.push({ rel: path, mtime })
    else await utimes(abs, mtime, mtime)
  }

  /** End of archive: opaque dirs (apply/overlay), then directory mtimes deepest first. */
  async finish(): Promise<void> {
    for (const dir of this.result.opaqueDirs) {
      if (this.o.whiteouts === 'apply') await this.applyOpaque(dir)
      else if (this.o.whiteouts === 'overlay') {
        if (!this.isRoot) {
          this.warn('WHITEOUT_NOT_MATERIALIZED', dir, 'opaque dir recorded only (trusted.* xattrs need root)')
          continue
        }
        const abs = resolveInside(this.root, dir)
        this.durability?.dirChanged(dir)
        await ensureNoSymlinkOnPath(this.root, `${dir}/x`)
        const st = await lstatOrNull(abs)
        if (!st?.isDirectory()) await mkdir(abs, { mode: 0o755 })
        await setXattr(abs, OVERLAY_OPAQUE_XATTR, 'y')
      }
    }
    // An opaque dir was emptied of its lower content: it gets a new mtime (see applyOpaque).
    for (const d of this.result.opaqueDirs) this.keptTimes.delete(d)
    const kept = [...this.keptTimes].sort((a, b) => b[0].length - a[0].length)
    for (const [rel, t] of kept) await setDirTimes(this.root, rel, t.atime, t.mtime)
    this.dirTimes.sort((a, b) => b.rel.length - a.rel.length)
    for (const { rel, mtime } of this.dirTimes) await setDirTimes(this.root, rel, mtime, mtime)
    await this.durability?.finish()
  }

  /** After a failure: closes the files still being synced (the caller discards the tree). */
  async abandon(): Promise<void> {
    await this.durability?.settle()
  }

  /** Deletes what lower layers put under `dir`: everything not created here nor above something created here. */
  private async applyOpaque(dir: string): Promise<void> {
    await ensureNoSymlinkOnPath(this.root, dir === '' ? 'x' : `${dir}/x`)
    const keep = new Set<string>()
    for (const p of this.created) {
      if (dir !== '' && !p.startsWith(`${dir}/`)) continue
      for (let q = p; q !== '.' && q !== dir; q = posix.dirname(q)) keep.add(q)
    }
    const walk = async (rel: string): Promise<void> => {
      const abs = resolveInside(this.root, rel)
      const names = await readdir(abs).catch(() => [] as string[])
      for (const n of names) {
        const child = rel === '' ? n : `${rel}/${n}`
        if (!keep.has(child)) {
          // The opaque dir itself gets a new mtime, as with umoci; directories below it keep theirs.
          if (rel !== dir) await this.keepTimes(rel)
          await rm(join(abs, n), { recursive: true, force: true })
        } else if (!this.created.has(child) || (await lstatOrNull(join(abs, n)))?.isDirectory())
          await walk(child)
      }
    }
    await walk(dir)
  }

  private warn(code: UnpackWarningCode, path: string, message: string): void {
    const w: UnpackWarning = { code, path, message }
    this.result.warnings.push(w)
    this.o.onWarning?.(w)
  }
}

function checkLinkName(path: string, target: string): void {
  if (target === '' || target.includes('\0') || Buffer.byteLength(target) > MAX_LAYER_PATH_BYTES) {
    throw new CofferError('ERR_IMAGE_TAR_INVALID', `${JSON.stringify(path)}: bad symlink target`)
  }
}

async function lstatOrNull(p: string): Promise<Awaited<ReturnType<typeof lstat>> | null> {
  try {
    return await lstat(p)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

function paxInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,10}$/.test(v)) return undefined
  return Number(v)
}

/** PAX mtime is decimal seconds with an optional fraction ("1577836800.123456789"). */
function paxTime(v: string | undefined): Date | undefined {
  if (v === undefined || !/^-?\d{1,12}(\.\d{1,9})?$/.test(v)) return undefined
  return new Date(Number(v) * 1000)
}
