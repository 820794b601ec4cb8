import { constants as osConstants } from 'node:os'
import { errnoNumberOf } from '../posix-error.js'
import type { VolumeFile } from '../open-file.js'
import type { Volume, VolumeStat } from '../volume.js'
import type { Cb, FuseOperations, FuseStat } from './binding.js'
import { HandleTable } from './handle-table.js'

/** Where the FUSE layer reports what it refused to serve (corrupt blocks, unexpected errors). */
export type FuseLog = (line: string) => void

/** The negative errno a FUSE reply carries for `err`. */
export function fuseErrno(err: unknown): number {
  return -errnoNumberOf(err)
}

function toFuseStat(st: VolumeStat): FuseStat {
  return {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    dev: st.dev,
    nlink: st.nlink,
    // The kernel numbers inodes itself (no use_ino); this is for completeness.
    ino: st.ino,
    rdev: 0,
    blksize: 4096,
    blocks: st.blocks,
    atime: st.atimeMs,
    mtime: st.mtimeMs,
    ctime: st.ctimeMs,
  }
}

/**
 * Maps libfuse's path-based requests onto a Volume. Every handler is async and answers exactly
 * once; a rejected promise becomes its errno (errnoOf: failed authentication is EIO, never data),
 * and an EIO is logged with the operation and path, as gocryptfs logs "corrupt block".
 *
 * Open files live in a handle table (fh numbers from 1; 0 means "no handle" to the binding). The
 * `buf` of read/write is libfuse memory that is detached once the callback runs: reads decrypt
 * into it and writes encrypt from it before answering, and nothing keeps a reference after that.
 */
export function fuseOperations(vol: Volume, log: FuseLog): { ops: FuseOperations; handles: HandleTable } {
  const handles = new HandleTable()

  /** Runs `fn` and answers `cb` with 0, or the errno of what it threw. */
  const reply = (op: string, path: string, cb: Cb, fn: () => Promise<unknown>): void => {
    // A write answered early (write-behind) reaches the backing file before anything else runs.
    vol.settle()
    // Promise.resolve().then: a synchronous throw (an unknown fh) is an errno too, never a crash.
    Promise.resolve()
      .then(fn)
      .then(
        () => cb(0),
        (err: unknown) => cb(fail(op, path, err)),
      )
  }
  const replyWith = <T>(op: string, path: string, cb: Cb<T>, fn: () => Promise<T>): void => {
    vol.settle()
    Promise.resolve()
      .then(fn)
      .then(
        (v) => (cb as (err: number, value?: T) => void)(0, v),
        (err: unknown) => (cb as (err: number) => void)(fail(op, path, err)),
      )
  }
  /** read/write: answered with the byte count before the handler returns, or the errno. */
  const replyBytes = (op: string, path: string, cb: (n: number) => void, fn: () => number): void => {
    let n: number
    try {
      n = fn()
    } catch (err) {
      return cb(fail(op, path, err))
    }
    cb(n)
  }
  const fail = (op: string, path: string, err: unknown): number => {
    const errno = fuseErrno(err)
    if (errno === -osConstants.errno.EIO)
      log(`${op} ${JSON.stringify(path)}: EIO (${err instanceof Error ? err.message : String(err)})`)
    return errno
  }
  const file = (fh: number): VolumeFile => handles.get(fh)

  const ops: FuseOperations = {
    init: (cb) => cb(0),
    // Reads of open files may be served by the binding itself (native/fuse-bridge.c) with the
    // same block rules; anything it cannot vouch for comes here.
    backingFd: (fh) => handles.get(fh).backingFd,
    writeBehindPending: () => vol.writeBehindPending(),
    getattr: (path, cb) => replyWith('getattr', path, cb, async () => toFuseStat(await vol.getattr(path))),
    readdir: (path, cb) =>
      replyWith('readdir', path, cb, async () => [
        '.',
        '..',
        ...(await vol.readdir(path)).map((e) => e.name),
      ]),
    open: (path, _flags, cb) =>
      // O_TRUNC arrives as a separate truncate (no atomic_o_trunc in libfuse2's defaults).
      replyWith('open', path, cb, async () => handles.add(await vol.open(path))),
    create: (path, mode, cb) =>
      replyWith('create', path, cb, async () =>
        handles.add(await vol.open(path, { create: true, mode: mode & 0o7777 })),
      ),
    // Reads and writes are answered before the handler returns: the open file does them
    // synchronously (open-file.ts), so there is no promise between the kernel's request and the
    // answer. `buf` is libfuse memory, valid until `cb` runs; nothing keeps it after that (a
    // write-behind copies it first).
    read: (path, fh, buf, len, pos, cb) =>
      replyBytes('read', path, cb, () => file(fh).readIntoSync(pos, buf.subarray(0, len))),
    write: (path, fh, buf, len, pos, cb) =>
      replyBytes('write', path, cb, () => file(fh).writeSync(pos, buf.subarray(0, len))),
    release: (path, fh, cb) => reply('release', path, cb, () => handles.remove(fh).close()),
    // close(2): reports a failed write-behind of this handle (open-file.ts).
    flush: (path, fh, cb) => reply('flush', path, cb, () => file(fh).flush()),
    fsync: (path, _datasync, fh, cb) => reply('fsync', path, cb, () => file(fh).sync()),
    truncate: (path, size, cb) => reply('truncate', path, cb, () => vol.truncate(path, size)),
    ftruncate: (path, fh, size, cb) => reply('ftruncate', path, cb, () => file(fh).truncate(size)),
    unlink: (path, cb) => reply('unlink', path, cb, () => vol.unlink(path)),
    rename: (src, dest, cb) => reply('rename', src, cb, () => vol.rename(src, dest)),
    link: (existing, newPath, cb) => reply('link', newPath, cb, () => vol.link(existing, newPath)),
    symlink: (target, path, cb) => reply('symlink', path, cb, () => vol.symlink(target, path)),
    readlink: (path, cb) => replyWith('readlink', path, cb, () => vol.readlink(path)),
    mkdir: (path, mode, cb) => reply('mkdir', path, cb, () => vol.mkdir(path, mode & 0o7777)),
    rmdir: (path, cb) => reply('rmdir', path, cb, () => vol.rmdir(path)),
    chmod: (path, mode, cb) => reply('chmod', path, cb, () => vol.chmod(path, mode & 0o7777)),
    chown: (path, uid, gid, cb) => reply('chown', path, cb, () => vol.chown(path, uid, gid)),
    // A time left undefined is UTIME_OMIT: `touch -m`, and `tar -x`, which sets mtime only.
    utimens: (path, atime, mtime, cb) =>
      reply('utimens', path, cb, () =>
        vol.utimes(
          path,
          atime === undefined ? undefined : atime / 1000,
          mtime === undefined ? undefined : mtime / 1000,
        ),
      ),
    statfs: (path, cb) =>
      replyWith('statfs', path, cb, async () => {
        const s = await vol.statfs()
        return {
          bsize: s.bsize,
          frsize: s.bsize,
          blocks: s.blocks,
          bfree: s.bfree,
          bavail: s.bavail,
          files: s.files,
          ffree: s.ffree,
          favail: s.ffree,
          fsid: 0,
          flag: 0,
          namemax: s.namemax,
        }
      }),
  }
  return { ops, handles }
}
