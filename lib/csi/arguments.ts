/** Argument checks shared by the CSI services: CSI's "missing or invalid field ⇒ INVALID_ARGUMENT". */
import { isAbsolute, normalize } from 'node:path'
import { CofferError } from '../util/errors.js'

/** proto3 has no "unset" for strings: the empty string is a missing field. */
export function required(value: string, field: string): string {
  if (value === '') throw new CofferError('ERR_CSI_ARGUMENT_MISSING', `${field} is required`)
  return value
}

/** A required path that must be absolute and normal (no `..`, no `//`): it becomes a mount point. */
export function requiredPath(value: string, field: string): string {
  required(value, field)
  if (
    !isAbsolute(value) ||
    normalize(value).replace(/\/$/, '') !== value.replace(/\/$/, '') ||
    value.includes('\0')
  )
    throw new CofferError('ERR_CSI_ARGUMENT_INVALID', `${field} must be an absolute, normalised path`)
  return value.length > 1 ? value.replace(/\/$/, '') : value
}
