/**
 * The only code that decides whether a layer entry may be written, and where (like node-tar's
 * `[CHECKPATH]` / `[ENSURE_NO_SYMLINK]`). The unpacker calls these and re-implements none of it.
 *
 * Model: Node has no openat2(RESOLVE_IN_ROOT) and no chroot, so every path is resolved component
 * by component below the root with lstat, and a symlink anywhere on the way is refused rather than
 * followed (c/storage follows in-root symlinks inside a chroot; we cannot, so we are stricter). The
 * final open uses O_NOFOLLOW|O_EXCL. lstat-then-open is only race-free because nothing else writes
 * into the unpack directory while we do: the layer store unpacks into a private staging directory.
 */
import { constants } from 'node:fs'
import { lstat, open } from 'node:fs/promises'
import { isAbsolute, join, relative, sep } from 'node:path'
import { CofferError } from '../../util/errors.js'
import { MAX_LAYER_PATH_BYTES } from '../../util/limits.js'

/** A cleaned entry name: components without `.`, `..` or empty parts; '' is the root itself. */
export interface EntryPath {
  /** Components joined by '/', never starting with '/'. */
  path: string
  /** True when a leading '/' (or several) was removed: the caller emits a warning. */
  strippedRoot: boolean
}

/**
 * Pure string work, no I/O. Strips leading '/' and './', drops '.' and empty components, and
 * refuses any '..' component (ERR_IMAGE_UNSAFE_PATH) and NUL bytes, as node-tar does. Refusing
 * every '..' rather than resolving it lexically keeps the rule simple: no layer produced by a real
 * build tool contains one.
 */
export function sanitizeEntryPath(name: string): EntryPath {
  if (Buffer.byteLength(name) > MAX_LAYER_PATH_BYTES) {
    throw new CofferError('ERR_IMAGE_UNSAFE_PATH', `entry name longer than ${MAX_LAYER_PATH_BYTES} bytes`)
  }
  if (name.includes('\0')) throw new CofferError('ERR_IMAGE_UNSAFE_PATH', 'entry name contains a NUL byte')
  const strippedRoot = name.startsWith('/')
  const parts: string[] = []
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..')
      throw new CofferError('ERR_IMAGE_UNSAFE_PATH', `entry name ${JSON.stringify(name)} contains '..'`)
    parts.push(part)
  }
  return { path: parts.join('/'), strippedRoot }
}

/** Defense in depth: the joined target must stay strictly under root, else ERR_IMAGE_UNSAFE_PATH. */
export function resolveInside(root: string, rel: string): string {
  const abs = join(root, rel)
  const back = relative(root, abs)
  if (back === '') return abs
  if (back.startsWith('..') || isAbsolute(back) || back.split(sep).includes('..')) {
    throw new CofferError('ERR_IMAGE_UNSAFE_PATH', `${JSON.stringify(rel)} resolves outside the root`)
  }
  return abs
}

/**
 * lstat each directory component of `rel` below root (not the last one). A symlink on the way is
 * ERR_IMAGE_UNSAFE_PATH; a non-directory is ERR_IMAGE_UNSAFE_PATH too (the entry cannot live under
 * a file). Returns how many leading components exist, so the caller creates the rest.
 */
export async function ensureNoSymlinkOnPath(root: string, rel: string): Promise<number> {
  const parts = rel === '' ? [] : rel.split('/')
  let cur = root
  for (let i = 0; i < parts.length - 1; i++) {
    cur = join(cur, parts[i] as string)
    let st
    try {
      st = await lstat(cur)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return i
      throw err
    }
    if (st.isSymbolicLink()) {
      throw new CofferError(
        'ERR_IMAGE_UNSAFE_PATH',
        `${JSON.stringify(rel)}: component ${JSON.stringify(parts.slice(0, i + 1).join('/'))} is a symlink`,
      )
    }
    if (!st.isDirectory()) {
      throw new CofferError(
        'ERR_IMAGE_UNSAFE_PATH',
        `${JSON.stringify(rel)}: component ${JSON.stringify(parts.slice(0, i + 1).join('/'))} is not a directory`,
      )
    }
  }
  return Math.max(parts.length - 1, 0)
}

/**
 * Sets a directory's times at the end of a layer, when later entries may have replaced it or a
 * parent with a symlink: utimes(2) would follow one out of the root. So the path is checked again
 * and opened O_DIRECTORY|O_NOFOLLOW, and the times are set on that descriptor. A path that is no
 * longer a directory is skipped.
 */
export async function setDirTimes(root: string, rel: string, atime: Date, mtime: Date): Promise<void> {
  try {
    await ensureNoSymlinkOnPath(root, rel)
  } catch (err) {
    if (err instanceof CofferError && err.code === 'ERR_IMAGE_UNSAFE_PATH') return
    throw err
  }
  let fh
  try {
    fh = await open(
      resolveInside(root, rel),
      constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
    )
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') return
    throw err
  }
  try {
    await fh.utimes(atime, mtime)
  } finally {
    await fh.close()
  }
}
