/**
 * The `fs` KBS store: one file per entry under a root directory (layout in `key-path.ts`, file
 * format in `entry-format.ts`). The default store for a single KBS; replicas share `postgres`.
 *
 * Concurrency, across processes as well as within one:
 * - Readers take no lock. Every write goes to a temp file beside the entry, is fsynced and renamed
 *   over it (lib/util/atomic-file.ts), so a reader opens either the old or the new file, never a
 *   torn one.
 * - Writers (put, putIfAbsent, delete, and the lazy sweep of an expired entry) hold a per-entry
 *   lock: an mkdir lock `.lock-<name>` beside the entry (proper-lockfile, as the image layout's
 *   index.json uses; mkdir is atomic, and a holder that died is taken over after `LOCK_STALE_MS`).
 *   The lock is what makes "insert unless present and unexpired" one step: without it, replacing an
 *   expired entry could race a concurrent put or a second putIfAbsent and let two callers win.
 * - Expired entries are invisible at once and removed lazily, by the `get` or `list` that finds
 *   them, re-checked under the lock so a value written meanwhile survives.
 *
 * Files are 0600 and directories 0700: the store holds secrets. Empty directories left by deletes
 * are kept (removing them would race a concurrent writer creating an entry in them).
 */
import { constants } from 'node:fs'
import { chmod, lstat, mkdir, open, readdir, stat, unlink } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import lockfile from 'proper-lockfile'
import {
  assertPutOptions,
  assertStoreNamespace,
  assertStoreValue,
  isExpired,
  type KbsStore,
  type PutOptions,
  type StoreNamespace,
} from '../../../lib/kbs/store.js'
import { fsyncDir, writeFileAtomic } from '../../../lib/util/atomic-file.js'
import { CofferError, wrapError } from '../../../lib/util/errors.js'
import { decodeEntry, decodeHeader, encodeEntry, ENTRY_HEADER_BYTES, type Entry } from './entry-format.js'
import { isSegmentName, MAX_KEY_SEGMENTS, resolveEntryPath, type EntryPath } from './key-path.js'

/** A lock older than this (its holder stopped refreshing it) is taken over. */
const LOCK_STALE_MS = 10_000
/** Waiting for a busy entry: up to 150 attempts, 5–100 ms apart (~14 s, past LOCK_STALE_MS, so a dead holder never makes a write fail). */
const LOCK_RETRIES = { retries: 150, factor: 1.3, minTimeout: 5, maxTimeout: 100, randomize: true }
const FILE_MODE = 0o600
const DIR_MODE = 0o700

export interface FsStoreOptions {
  /** The store's directory; created (0700) if missing, and tightened to 0700 if group or others may read it. */
  root: string
}

/** Opens (creating if needed) an `fs` store. */
export async function createFsStore(o: FsStoreOptions): Promise<KbsStore> {
  const root = resolve(o.root)
  try {
    await mkdir(root, { recursive: true, mode: DIR_MODE })
    const st = await stat(root)
    if (!st.isDirectory())
      throw new CofferError('ERR_CONFIG_INVALID', `kbs store root ${root} is not a directory`)
    if ((st.mode & 0o077) !== 0) await chmod(root, DIR_MODE)
  } catch (err) {
    throw wrapError(err, 'ERR_KBS_STORE_UNAVAILABLE', `cannot open kbs store root ${root}`)
  }
  return new FsStore(root)
}

class FsStore implements KbsStore {
  private closed = false

  constructor(private readonly root: string) {}

  async get(ns: StoreNamespace, key: string): Promise<Uint8Array | undefined> {
    const p = this.entryPath(ns, key)
    return this.guard(async () => {
      const entry = await readEntry(p.file, key)
      if (!entry) return undefined
      if (isExpired(entry.expiresAt, Date.now())) {
        await this.sweep(p, key)
        return undefined
      }
      return entry.value
    })
  }

  async put(ns: StoreNamespace, key: string, value: Uint8Array, options?: PutOptions): Promise<void> {
    const p = this.entryPath(ns, key)
    assertStoreValue(value)
    assertPutOptions(options)
    const bytes = encodeEntry(value, options?.expiresAt)
    await this.guard(() => this.withLock(p, () => writeFileAtomic(p.file, bytes, FILE_MODE)))
  }

  async putIfAbsent(
    ns: StoreNamespace,
    key: string,
    value: Uint8Array,
    options?: PutOptions,
  ): Promise<boolean> {
    const p = this.entryPath(ns, key)
    assertStoreValue(value)
    assertPutOptions(options)
    const bytes = encodeEntry(value, options?.expiresAt)
    return this.guard(() =>
      this.withLock(p, async () => {
        const current = await readEntry(p.file, key).catch(corruptAsLive)
        if (current && !isExpired(current.expiresAt, Date.now())) return false
        await writeFileAtomic(p.file, bytes, FILE_MODE)
        return true
      }),
    )
  }

  async delete(ns: StoreNamespace, key: string): Promise<boolean> {
    const p = this.entryPath(ns, key)
    return this.guard(async () => {
      if (!(await exists(p.file))) return false
      return this.withLock(p, async () => {
        const current = await readEntry(p.file, key).catch(corruptAsLive)
        if (!current) return false
        await removeEntry(p)
        return !isExpired(current.expiresAt, Date.now())
      })
    })
  }

  async list(ns: StoreNamespace): Promise<string[]> {
    this.assertOpen()
    assertStoreNamespace(ns)
    return this.guard(async () => {
      const keys: string[] = []
      const now = Date.now()
      for (let depth = 1; depth <= MAX_KEY_SEGMENTS; depth++) {
        for (const key of await listFiles(join(this.root, ns, String(depth)), depth, [])) {
          const header = await readHeader(this.entryPath(ns, key).file, key)
          if (!header) continue
          if (isExpired(header.expiresAt, now)) await this.sweep(this.entryPath(ns, key), key)
          else keys.push(key)
        }
      }
      return keys.sort()
    })
  }

  async close(): Promise<void> {
    this.closed = true
  }

  private entryPath(ns: StoreNamespace, key: string): EntryPath {
    this.assertOpen()
    return resolveEntryPath(this.root, ns, key)
  }

  private assertOpen(): void {
    if (this.closed) throw new CofferError('ERR_KBS_STORE_UNAVAILABLE', 'kbs store is closed')
  }

  /**
   * Removes an entry found expired, unless a writer replaced it since (re-checked under the lock).
   * Best effort: a read must not wait for, or fail on, housekeeping, so a busy lock (someone is
   * writing the entry anyway) or an I/O error leaves the entry for the next reader.
   */
  private async sweep(p: EntryPath, key: string): Promise<void> {
    await this.withLock(
      p,
      async () => {
        const current = await readEntry(p.file, key).catch(() => undefined)
        if (current && isExpired(current.expiresAt, Date.now())) await removeEntry(p)
      },
      0,
    ).catch(() => {})
  }

  private async withLock<T>(
    p: EntryPath,
    work: () => Promise<T>,
    retries: typeof LOCK_RETRIES | 0 = LOCK_RETRIES,
  ): Promise<T> {
    await mkdir(p.dir, { recursive: true, mode: DIR_MODE })
    let release: () => Promise<void>
    try {
      release = await lockfile.lock(p.file, {
        realpath: false,
        lockfilePath: join(p.dir, `.lock-${p.name}`),
        stale: LOCK_STALE_MS,
        retries,
        // Fires from a timer when our lock went stale (the event loop stalled > LOCK_STALE_MS); the
        // default throws there and would crash the process. The write under it is already atomic.
        onCompromised: () => {},
      })
    } catch (err) {
      throw new CofferError('ERR_KBS_STORE_UNAVAILABLE', 'kbs store entry is busy', { cause: err })
    }
    try {
      return await work()
    } finally {
      await release().catch(() => {})
    }
  }

  /** Maps file-system failures to ERR_KBS_STORE_UNAVAILABLE; coded errors pass through. */
  private async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (err) {
      throw wrapError(err, 'ERR_KBS_STORE_UNAVAILABLE', 'kbs store i/o failed')
    }
  }
}

/** The entry at `file`, or undefined when there is none. Never follows a symlink. */
async function readEntry(file: string, key: string): Promise<Entry | undefined> {
  const fh = await openEntry(file, key)
  if (!fh) return undefined
  try {
    return decodeEntry(await fh.readFile(), `kbs store entry ${key}`)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EISDIR') throw notAnEntry(key)
    throw err
  } finally {
    await fh.close()
  }
}

/** Only the header (for `list`, which must not read every value whole). */
async function readHeader(file: string, key: string): Promise<{ expiresAt?: number } | undefined> {
  const fh = await openEntry(file, key)
  if (!fh) return undefined
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw notAnEntry(key)
    const header = Buffer.alloc(ENTRY_HEADER_BYTES)
    const { bytesRead } = await fh.read(header, 0, ENTRY_HEADER_BYTES, 0)
    return decodeHeader(header.subarray(0, bytesRead), st.size, `kbs store entry ${key}`)
  } finally {
    await fh.close()
  }
}

async function openEntry(file: string, key: string) {
  try {
    return await open(file, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    if (code === 'ELOOP') throw notAnEntry(key)
    throw err
  }
}

function notAnEntry(key: string): CofferError {
  return new CofferError('ERR_KBS_STORE_CORRUPT', `kbs store entry ${key}: not a regular file`)
}

/** A corrupt entry still counts as present: putIfAbsent must not overwrite it, delete removes it. */
function corruptAsLive(err: unknown): Entry {
  if (err instanceof CofferError && err.code === 'ERR_KBS_STORE_CORRUPT') return { value: Buffer.alloc(0) }
  throw err
}

async function removeEntry(p: EntryPath): Promise<void> {
  try {
    await unlink(p.file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  await fsyncDir(p.dir)
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return false
    throw err
  }
}

/** Keys of the regular files `depth` levels below `dir`; names that are no key segment are skipped. */
async function listFiles(dir: string, depth: number, prefix: string[]): Promise<string[]> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return []
    throw err
  }
  const keys: string[] = []
  for (const e of entries) {
    if (!isSegmentName(e.name)) continue
    if (depth > 1 && e.isDirectory())
      keys.push(...(await listFiles(join(dir, e.name), depth - 1, [...prefix, e.name])))
    else if (depth === 1 && e.isFile()) keys.push([...prefix, e.name].join('/'))
  }
  return keys
}
