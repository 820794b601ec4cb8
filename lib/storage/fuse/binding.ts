import { execFile } from 'node:child_process'
import { stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CofferError } from '../../util/errors.js'

/**
 * coffer's FUSE binding (native/fuse-bridge.c over Debian's libfuse2, the path-based API): libfuse
 * runs its multi-threaded loop on its own threads and hands each request to this thread, where
 * `FuseOperations` answer it. Every handler answers exactly once, through its callback.
 *
 * It replaced fuse-native 2.2.6, whose utimens lost or garbled modification times (`tar -x`,
 * `touch -m`, `cp -p`; docs/storage.md) and whose stat numbers were 32-bit.
 */

/** Callback convention: 0 or a negative errno first. */
export type Cb<T = void> = T extends void ? (err: number) => void : (err: number, value?: T) => void

export interface FuseStat {
  mode: number
  uid: number
  gid: number
  size: number
  dev: number
  nlink: number
  ino: number
  rdev: number
  blksize: number
  blocks: number
  /** Milliseconds since the epoch. */
  atime: number
  mtime: number
  ctime: number
}

export interface FuseStatfs {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  favail: number
  fsid: number
  flag: number
  namemax: number
}

export interface FuseOperations {
  init?(cb: Cb): void
  getattr(path: string, cb: Cb<FuseStat>): void
  readdir(path: string, cb: (err: number, names?: string[]) => void): void
  open(path: string, flags: number, cb: Cb<number>): void
  create(path: string, mode: number, cb: Cb<number>): void
  /** `buf` is libfuse's memory, usable until `cb` runs (then it is detached). */
  read(path: string, fh: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void
  write(path: string, fh: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void
  release(path: string, fh: number, cb: Cb): void
  flush(path: string, fh: number, cb: Cb): void
  fsync(path: string, datasync: number, fh: number, cb: Cb): void
  truncate(path: string, size: number, cb: Cb): void
  ftruncate(path: string, fh: number, size: number, cb: Cb): void
  unlink(path: string, cb: Cb): void
  rename(src: string, dest: string, cb: Cb): void
  link(existing: string, newPath: string, cb: Cb): void
  symlink(target: string, path: string, cb: Cb): void
  readlink(path: string, cb: Cb<string>): void
  mkdir(path: string, mode: number, cb: Cb): void
  rmdir(path: string, cb: Cb): void
  chmod(path: string, mode: number, cb: Cb): void
  chown(path: string, uid: number, gid: number, cb: Cb): void
  /** Times in ms since the epoch; undefined leaves that time as it is (UTIME_OMIT). */
  utimens(path: string, atime: number | undefined, mtime: number | undefined, cb: Cb): void
  statfs(path: string, cb: Cb<FuseStatfs>): void
  /**
   * The backing file descriptor behind open handle `fh`, if libfuse's own threads may serve its
   * reads (pread and AES-GCM in native/fuse-bridge.c, with the mount's read key); undefined keeps
   * them on this thread. The descriptor must stay open until `release` of `fh` has answered.
   */
  backingFd?(fh: number): number | undefined
  /**
   * Whether a write answered early (write-behind) may still be on its way to the backing file:
   * then reads stay on this thread, which waits for it first. Asked after every answer.
   */
  writeBehindPending?(): boolean
}

/** A mounted file system; `unmount` detaches it (fusermount -uz) and is idempotent. */
export interface FuseSession {
  /**
   * Detaches the mount. Native reads stop first (and the binding's key copy is wiped), so the
   * open files' descriptors may be closed afterwards even if the kernel still sends requests for
   * files a process kept open on the detached mount.
   */
  unmount(): Promise<void>
  readCounts(): ReadCounts
  /** Settles when libfuse's loop has ended (unmounted here or from outside). */
  readonly ended: Promise<void>
}

interface NativeFuse {
  mount(
    mountpoint: string,
    options: string,
    dispatch: (op: number, req: unknown, ...args: unknown[]) => void,
    readKey: Uint8Array | null,
  ): unknown
  reply(req: unknown, result: number, value?: unknown): void
  hold(handle: unknown, on: boolean): void
  stopReads(handle: unknown): void
  readCounts(handle: unknown): [number, number]
}

/** How the mount's reads were answered so far. */
export interface ReadCounts {
  /** On libfuse's threads (native/fuse-bridge.c). */
  native: number
  /** On the JS thread: no read key, a write-behind unsettled, or something the native path refused. */
  js: number
}

/** Request kinds, in native/fuse-bridge.c's order. */
const enum Op {
  INIT,
  GETATTR,
  READDIR,
  OPEN,
  CREATE,
  READ,
  WRITE,
  RELEASE,
  FLUSH,
  FSYNC,
  TRUNCATE,
  FTRUNCATE,
  UNLINK,
  RENAME,
  LINK,
  SYMLINK,
  READLINK,
  MKDIR,
  RMDIR,
  CHMOD,
  CHOWN,
  UTIMENS,
  STATFS,
  EXIT,
}

/** Two directories up from this file, as native-gcm.ts: native/build (sources) or dist/native/build. */
const ADDON = new URL('../../../native/build/fuse-bridge.node', import.meta.url)
let cached: NativeFuse | undefined

function loadNative(): NativeFuse {
  try {
    cached ??= createRequire(import.meta.url)(fileURLToPath(ADDON)) as NativeFuse
  } catch (cause) {
    throw new CofferError(
      'ERR_STORAGE_MOUNT_FAILED',
      "coffer's FUSE binding is not built or libfuse2 is missing (npm run build; Debian: libfuse2 fuse)",
      { cause },
    )
  }
  return cached
}

const EIO = -5
/** How long the kernel may take to send INIT after the mount (it takes milliseconds). */
const INIT_TIMEOUT_MS = 30_000

function statArray(s: FuseStat): Float64Array {
  return Float64Array.of(
    s.mode,
    s.uid,
    s.gid,
    s.size,
    s.dev,
    s.nlink,
    s.ino,
    s.rdev,
    s.blksize,
    s.blocks,
    s.atime,
    s.mtime,
    s.ctime,
  )
}

function statfsArray(s: FuseStatfs): Float64Array {
  return Float64Array.of(
    s.bsize,
    s.frsize,
    s.blocks,
    s.bfree,
    s.bavail,
    s.files,
    s.ffree,
    s.favail,
    s.fsid,
    s.flag,
    s.namemax,
  )
}

/**
 * Mounts `ops` at `mountpoint` with libfuse options `options` (`fsname=…`, `allow_other`, …),
 * resolved once the kernel has sent INIT. The mountpoint must be an existing directory that is not
 * already a mount point. With `readKey` (the volume's content key; copied, wiped at the end) reads
 * of handles with a `backingFd` are served on libfuse's threads.
 */
export async function mountFuse(
  mountpoint: string,
  ops: FuseOperations,
  options: string[],
  readKey?: Uint8Array,
): Promise<FuseSession> {
  const native = loadNative()
  const at = await mountpointState(mountpoint)
  if (!at.directory) throw new CofferError('ERR_STORAGE_MOUNT_FAILED', `${mountpoint} is not a directory`)
  if (at.mounted) throw new CofferError('ERR_STORAGE_MOUNT_FAILED', `${mountpoint} is already a mount point`)

  let initialised: () => void
  let failed: (err: Error) => void
  const ready = new Promise<void>((resolve, reject) => {
    initialised = resolve
    failed = reject
  })
  let ended = false
  let resolveEnded: () => void
  const endedPromise = new Promise<void>((resolve) => (resolveEnded = resolve))

  // Native reads are held back while a write-behind is unsettled; the flag is brought up to date
  // before every answer, so it is on before the write that started one is answered.
  const session: { handle?: unknown } = {} // set once native.mount returns, before INIT
  let held = false
  const updateHold = (): void => {
    const hold = ops.writeBehindPending?.() ?? false
    if (hold !== held && session.handle !== undefined && !ended) {
      held = hold
      native.hold(session.handle, hold)
    }
  }
  /** The one answer to request `req`; a second one would be a bug in a handler, so it is dropped. */
  const answer = (req: unknown): ((result: number, value?: unknown) => void) => {
    let done = false
    return (result, value) => {
      if (done) return
      done = true
      if (readKey) updateHold()
      native.reply(req, result, value)
    }
  }
  /** The handle libfuse keeps: JS's number in the low 32 bits, the backing fd above them. */
  const withFd = (err: number, fh: number | undefined): number | undefined => {
    if (err !== 0 || fh === undefined) return fh
    let fd: number | undefined
    try {
      fd = readKey ? ops.backingFd?.(fh) : undefined
    } catch {
      fd = undefined // then this thread keeps the handle's reads
    }
    return fd !== undefined && fd > 0 && fd < 2 ** 21 ? fh + fd * 2 ** 32 : fh
  }
  const dispatch = (op: Op, req: unknown, ...args: unknown[]): void => {
    const a = answer(req)
    const s = (...x: unknown[]): unknown[] => [...x, (err: number) => a(err)]
    try {
      switch (op) {
        case Op.INIT:
          a(0)
          initialised()
          return
        case Op.EXIT:
          ended = true
          resolveEnded()
          // Before INIT: libfuse's loop could not run (or the mount went away at once).
          failed(
            new CofferError(
              'ERR_STORAGE_MOUNT_FAILED',
              'the FUSE session ended before the kernel initialised it',
            ),
          )
          return
        case Op.GETATTR:
          return ops.getattr(args[0] as string, (err, st) =>
            a(err, err === 0 && st ? statArray(st) : undefined),
          )
        case Op.STATFS:
          return ops.statfs(args[0] as string, (err, sf) =>
            a(err, err === 0 && sf ? statfsArray(sf) : undefined),
          )
        case Op.READDIR:
          return ops.readdir(args[0] as string, (err, names) => a(err, names))
        case Op.OPEN:
          return ops.open(args[0] as string, args[1] as number, (err, fh) => a(err, withFd(err, fh)))
        case Op.CREATE:
          return ops.create(args[0] as string, args[1] as number, (err, fh) => a(err, withFd(err, fh)))
        case Op.READLINK:
          return ops.readlink(args[0] as string, (err, target) => a(err, target))
        case Op.READ:
        case Op.WRITE: {
          const [path, fh, buf, len, pos] = args as [string, number, Buffer, number, number]
          const fn = op === Op.READ ? ops.read : ops.write
          return fn(path, fh, buf, len, pos, (result) => a(result))
        }
        case Op.RELEASE:
          return ops.release(...(s(...args) as Parameters<FuseOperations['release']>))
        case Op.FLUSH:
          return ops.flush(...(s(...args) as Parameters<FuseOperations['flush']>))
        case Op.FSYNC:
          return ops.fsync(...(s(...args) as Parameters<FuseOperations['fsync']>))
        case Op.TRUNCATE:
          return ops.truncate(...(s(...args) as Parameters<FuseOperations['truncate']>))
        case Op.FTRUNCATE:
          return ops.ftruncate(...(s(...args) as Parameters<FuseOperations['ftruncate']>))
        case Op.UNLINK:
          return ops.unlink(...(s(...args) as Parameters<FuseOperations['unlink']>))
        case Op.RENAME:
          return ops.rename(...(s(...args) as Parameters<FuseOperations['rename']>))
        case Op.LINK:
          return ops.link(...(s(...args) as Parameters<FuseOperations['link']>))
        case Op.SYMLINK:
          return ops.symlink(...(s(...args) as Parameters<FuseOperations['symlink']>))
        case Op.MKDIR:
          return ops.mkdir(...(s(...args) as Parameters<FuseOperations['mkdir']>))
        case Op.RMDIR:
          return ops.rmdir(...(s(...args) as Parameters<FuseOperations['rmdir']>))
        case Op.CHMOD:
          return ops.chmod(...(s(...args) as Parameters<FuseOperations['chmod']>))
        case Op.CHOWN:
          return ops.chown(...(s(...args) as Parameters<FuseOperations['chown']>))
        case Op.UTIMENS:
          return ops.utimens(...(s(...args) as Parameters<FuseOperations['utimens']>))
        default:
          return a(-38) // ENOSYS
      }
    } catch {
      a(EIO) // a handler that throws instead of answering: never leave libfuse's thread waiting
    }
  }
  session.handle = native.mount(mountpoint, options.join(','), dispatch, readKey ?? null)
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new CofferError(
                'ERR_STORAGE_MOUNT_FAILED',
                `the kernel did not initialise ${mountpoint} in time`,
              ),
            ),
          INIT_TIMEOUT_MS,
        )
      }),
    ])
  } catch (err) {
    if (!ended) native.stopReads(session.handle)
    await lazyUnmount(mountpoint) // ends libfuse's loop if it is still waiting
    throw err
  } finally {
    clearTimeout(timer)
  }
  let unmounting: Promise<void> | undefined
  let lastCounts: ReadCounts = { native: 0, js: 0 }
  const readCounts = (): ReadCounts => {
    if (!ended) {
      const [nativeReads, js] = native.readCounts(session.handle)
      lastCounts = { native: nativeReads, js }
    }
    return lastCounts
  }
  return {
    ended: endedPromise,
    readCounts,
    unmount: () =>
      (unmounting ??= (async () => {
        readCounts() // the last numbers, while the handle is still good
        if (!ended) native.stopReads(session.handle)
        const detached = await lazyUnmount(mountpoint)
        // Gone already (fusermount -u from outside, or the kernel aborted it; a dead mount's stat
        // fails with ENOTCONN): fine at shutdown.
        const at = detached ? undefined : await mountpointState(mountpoint).catch(() => undefined)
        if (at?.mounted) throw new CofferError('ERR_STORAGE_UNMOUNT_FAILED', `cannot unmount ${mountpoint}`)
      })()),
  }
}

/** `fusermount -uz`: detaches a mount even if it is busy or its server is gone. Never throws. */
export function lazyUnmount(mountpoint: string): Promise<boolean> {
  return new Promise((resolve) => execFile('fusermount', ['-uz', mountpoint], (err) => resolve(!err)))
}

/**
 * Whether `mountpoint` is a directory and something is mounted on it (its device differs from its
 * parent's). Rejects as stat does: a dead FUSE mount is ENOTCONN, which unmount takes as gone.
 */
async function mountpointState(mountpoint: string): Promise<{ directory: boolean; mounted: boolean }> {
  const [st, parent] = await Promise.all([stat(mountpoint), stat(dirname(mountpoint))])
  return { directory: st.isDirectory(), mounted: st.dev !== parent.dev }
}
