import { constants as osConstants } from 'node:os'
import { CofferError } from '../util/errors.js'

/**
 * How the Volume reports file-system errors. Failures of the backing directory are Node's own
 * system errors (`err.code === 'ENOENT'`, …) and pass through; the few the Volume raises itself
 * (ENOTEMPTY for a directory holding more than its diriv, EISDIR, …) look the same. Format and
 * crypto failures are CofferErrors. `errnoOf` is the one mapping the FUSE layer needs.
 */
export type PosixCode =
  | 'ENOENT'
  | 'EEXIST'
  | 'ENOTEMPTY'
  | 'EISDIR'
  | 'ENOTDIR'
  | 'EINVAL'
  | 'EIO'
  | 'ENAMETOOLONG'
  | 'EPERM'
  | 'EACCES'
  | 'EBADF'

export function posixError(code: PosixCode, syscall: string, path: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${syscall} ${JSON.stringify(path)}`) as NodeJS.ErrnoException
  err.code = code
  err.syscall = syscall
  err.path = path
  return err
}

/**
 * The errno name a FUSE reply should carry for `err`. A block or name that fails authentication is
 * EIO, never data; an unexpected error is EIO too, so nothing unverified leaks as success.
 */
export function errnoOf(err: unknown): string {
  if (err instanceof CofferError) {
    if (err.code === 'ERR_STORAGE_NAME_TOO_LONG') return 'ENAMETOOLONG'
    if (err.code === 'ERR_STORAGE_NAME_INVALID') return 'EINVAL'
    return 'EIO'
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : 'EIO'
}

/** `errnoOf` as this platform's errno number (EIO for a name it does not know). */
export function errnoNumberOf(err: unknown): number {
  return (osConstants.errno as Record<string, number | undefined>)[errnoOf(err)] ?? osConstants.errno.EIO
}
