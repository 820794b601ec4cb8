/**
 * Which volume capabilities coffer volumes have: a mounted filesystem (FUSE; no raw block device),
 * on one node (the ciphertext lives on that node's disk). `fs_type` and `mount_flags` are
 * accepted and ignored: the filesystem is always coffer's, and FUSE takes no ext4-style flags.
 */
import { CofferError, type CofferErrorCode } from '../util/errors.js'
import type { VolumeCapabilityMsg } from './messages.js'

const SINGLE_NODE_MODES = new Set([
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
])

/** Why `cap` is not supported, or undefined if it is. */
export function unsupportedReason(cap: VolumeCapabilityMsg): string | undefined {
  if (cap.access_type !== 'mount' || !cap.mount)
    return 'only mount access is supported (no raw block volumes)'
  const mode = cap.access_mode?.mode
  if (!mode || mode === 'UNKNOWN') return 'access_mode is missing'
  if (!SINGLE_NODE_MODES.has(mode)) return `access mode ${mode} is not supported: volumes are node-local`
  return undefined
}

/** Throws `code` unless every capability is supported. */
export function requireSupported(caps: VolumeCapabilityMsg[], code: CofferErrorCode): void {
  for (const cap of caps) {
    const reason = unsupportedReason(cap)
    if (reason) throw new CofferError(code, reason)
  }
}

/** Whether a publication in this mode must be the volume's only one (RWOP). */
export function isSingleWriter(cap: VolumeCapabilityMsg): boolean {
  return cap.access_mode?.mode === 'SINGLE_NODE_SINGLE_WRITER'
}

/** Whether this mode is read-only by itself (whatever the request's `readonly`). */
export function isReaderOnly(cap: VolumeCapabilityMsg): boolean {
  return cap.access_mode?.mode === 'SINGLE_NODE_READER_ONLY'
}
