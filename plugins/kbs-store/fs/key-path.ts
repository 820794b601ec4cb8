/**
 * Where the `fs` store keeps a key: `<root>/<namespace>/<n>/<segment 1>/…/<segment n>`, where n is
 * the key's number of `/`-separated segments (1–3). The resource `default/key/tag` is the file
 * `<root>/resource/3/default/key/tag`.
 *
 * Why segments become directories instead of one flat name (trustee's LocalFs writes `/` as the
 * literal text `\x2F`, kbs-and-attestation.md §1.5): a valid key has up to 3 × 128 characters, and a
 * flat name that long breaks NAME_MAX (255 bytes); each segment alone always fits. The depth
 * directory keeps the key `a` (a file at depth 1) and the key `a/b` (under a directory `a` at depth
 * 2) apart, so the mapping is one-to-one and reversible, which `list` relies on.
 *
 * Why no key can escape: `isValidStoreKey` admits only `[A-Za-z0-9_.-]` in segments, never `.` or
 * `..`, and no segment starts with `.`; so a segment is an ordinary name inside its directory, and
 * every name this store creates for itself (temp files `.tmp-…`, lock directories `.lock-…`) starts
 * with `.` and can never be read as a key. `resolveEntryPath` re-checks the resolved path anyway.
 * Pure string work, no I/O (node-tar's `strip-absolute-path`).
 */
import { join, resolve, sep } from 'node:path'
import { assertStoreKey, isValidStoreKey, type StoreNamespace } from '../../../lib/kbs/store.js'
import { CofferError } from '../../../lib/util/errors.js'

/** A key's deepest possible segment count (lib/kbs/store.ts `KEY`). */
export const MAX_KEY_SEGMENTS = 3

export interface EntryPath {
  /** The directory holding the entry's file (created on write). */
  dir: string
  /** The last segment: the file's name inside `dir`. */
  name: string
  /** `join(dir, name)`. */
  file: string
}

/** Maps a key to its file under `root`; ERR_KBS_STORE_KEY_INVALID for a key the store must not take. */
export function resolveEntryPath(root: string, ns: StoreNamespace, key: string): EntryPath {
  assertStoreKey(ns, key)
  const segments = key.split('/')
  const nsDir = resolve(root, ns)
  const dir = join(nsDir, String(segments.length), ...segments.slice(0, -1))
  const name = segments[segments.length - 1] as string
  const file = join(dir, name)
  // Defense in depth: the validation above already rules out every escaping segment.
  if (!file.startsWith(nsDir + sep) || resolve(file) !== file) {
    throw new CofferError('ERR_KBS_STORE_KEY_INVALID', 'invalid store key')
  }
  return { dir, name, file }
}

/** A directory or file name `list` may take as a key segment (everything else is ours or foreign). */
export function isSegmentName(name: string): boolean {
  return !name.includes('/') && isValidStoreKey(name)
}
