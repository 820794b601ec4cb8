import { createRequire } from 'node:module'

/**
 * The narrow seam to fuse-native 2.2.6 (libfuse 2.9 high-level, path-based API). Only what coffer
 * uses is typed here, with the binding's real argument orders (see the spec sheet storage.md §5.3:
 * fsync passes datasync before fh, utimens passes atime twice, read/write callbacks take the byte
 * count or a negative errno). fuse-native is CommonJS and ships no types, so it is loaded lazily:
 * importing this module costs nothing until `loadFuse()` runs.
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
  utimens(path: string, atime: number, mtime: number, cb: Cb): void
  statfs(path: string, cb: Cb<FuseStatfs>): void
}

export interface FuseOptions {
  /** Appended to `-o fsname=`; libfuse2 splits on commas, which is how `big_writes` gets in. */
  fsname?: string
  force?: boolean
  mkdir?: boolean
  debug?: boolean
  allowOther?: boolean
  attrTimeout?: number
  entryTimeout?: number
  maxRead?: number
  /** Per-request timeout in ms, or false for none. */
  timeout?: number | false
}

export interface FuseHandle {
  mount(cb: (err: Error | null) => void): void
  unmount(cb: (err: (Error & { unmountFailure?: boolean }) | null) => void): void
}

export interface FuseModule {
  new (mnt: string, ops: FuseOperations, opts: FuseOptions): FuseHandle
  unmount(mnt: string, cb: (err: Error | null) => void): void
}

let cached: FuseModule | undefined

/** Loads fuse-native (needs Debian libfuse2 at run time). */
export function loadFuse(): FuseModule {
  cached ??= createRequire(import.meta.url)('fuse-native') as FuseModule
  return cached
}
