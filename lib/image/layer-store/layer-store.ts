/**
 * A content-addressed store of unpacked layers, keyed by diff_id (the sha256 of the uncompressed
 * tar). Layout under `root`:
 *
 *   layers/sha256/<hex>/rootfs/      the unpacked layer (an overlayfs lowerdir when root)
 *   layers/sha256/<hex>/layer.json   LayerMeta: whiteouts, opaque dirs, cross-layer hardlinks, xattrs
 *   images/<hex>.json                ImageRecord: manifest digest → ordered diff_ids
 *   staging/<pid>-<rand>/            an unpack in progress, owned by process <pid>
 *   trash/<pid>-<rand>/              a layer being deleted by gc
 *
 * Lifecycle of a layer (containerd's content store, applied to directories): it is unpacked into a
 * private staging directory while its diff_id is hashed from the same bytes, and the unpacker
 * fsyncs each file and directory it wrote (`durable`); only when the stream has been read to EOF
 * and the digest matches is `layer.json` written (synced) and the whole directory renamed to
 * `layers/sha256/<hex>`. Until that rename it is invisible; after
 * it, complete. rename(2) of a directory onto an existing non-empty one fails, so when several
 * processes unpack the same diff_id at once exactly one rename wins and the others discard their
 * staging copy and reuse the winner's.
 *
 * A crash (kill -9) at any point leaves at most a staging or trash directory whose owner is dead;
 * `openLayerStore` removes those. It never touches a live process's staging directory (checked
 * with kill(pid, 0); pid reuse could at worst keep garbage until the next open).
 *
 * gc must not run concurrently with a pull that is about to record an image: a pull holds the
 * store's lock shared (`hold`) from its first look at the store until its record is written, and
 * gc takes it exclusive and waits (store-lock.ts), whichever process each runs in.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { parseDigest } from '../../oci/digest.js'
import { fsyncDir, writeFileAtomic } from '../../util/atomic-file.js'
import { CofferError } from '../../util/errors.js'
import { readOptionalFileLimited, type Io } from '../../util/io.js'
import { MAX_LAYER_META_BYTES } from '../../util/limits.js'
import type { UnpackOptions, UnpackResult, UnpackWarning } from '../unpack/types.js'
import { unpackHashed } from '../unpack/unpack-hashed.js'
import { ImageRecordSchema, LayerMetaSchema, type ImageRecord, type LayerMeta } from './records.js'
import { lockStoreExclusive, lockStoreShared, type StoreLock, type StoreLockOptions } from './store-lock.js'

/** Staging and trash names this process is using right now (see `ownerAlive`). */
const ACTIVE = new Set<string>()

export interface StoredLayer {
  diffId: string
  /** The unpacked tree; read-only by convention (it is shared by every image using the layer). */
  rootfs: string
  meta: LayerMeta
}

/**
 * Unpacks one layer into `dest` (an empty staging directory) with `o`, and returns the sha256 of
 * the tar it read, trailing blocks included, and the unpacker's result.
 */
export type StageFill = (dest: string, o: UnpackOptions) => Promise<{ diffId: string; result: UnpackResult }>

export type LayerLimits = Pick<UnpackOptions, 'maxEntrySize' | 'maxTotalSize' | 'maxEntries' | 'allowDevices'>

export interface LayerStore {
  readonly root: string
  /**
   * Returns the stored layer for `diffId`, unpacking `tar` (an uncompressed layer stream) first if
   * it is not stored yet. `reused` says the stream was not read (the caller should destroy it).
   * A digest mismatch is ERR_IMAGE_DIFF_ID_MISMATCH and commits nothing.
   */
  unpack(
    diffId: string,
    tar: Readable,
    o?: Io & LayerLimits & { onWarning?: (w: UnpackWarning) => void },
  ): Promise<StoredLayer & { reused: boolean }>
  /**
   * `unpack` with the unpacking done by `fill` (a worker thread, say): it gets the staging
   * directory and the options to unpack with, and returns the digest of the tar it unpacked and
   * the unpacker's result. Committed exactly as `unpack` commits; `fill` is not called when the
   * layer is stored already.
   */
  stage(diffId: string, fill: StageFill, o?: Io & LayerLimits): Promise<StoredLayer & { reused: boolean }>
  /** The stored layer, or undefined. ERR_IMAGE_STORE_CORRUPT if its record is damaged. */
  get(diffId: string): Promise<StoredLayer | undefined>
  /** diff_ids of all stored layers. */
  list(): Promise<string[]>
  /**
   * Writes the record. 'merge' (a pull): its `references` are added to those of an existing record
   * of the image; 'replace': written as given.
   */
  putImage(record: ImageRecord, mode?: 'merge' | 'replace'): Promise<void>
  getImage(manifestDigest: string): Promise<ImageRecord | undefined>
  /** Every image record, in no particular order. */
  listImages(): Promise<ImageRecord[]>
  deleteImage(manifestDigest: string): Promise<void>
  /**
   * Holds gc off until released (waiting for a running gc first). A pull holds it from its first
   * look at the store until its image record is written.
   */
  hold(o?: StoreLockOptions): Promise<StoreLock>
  /** Removes every layer no image record references, once no pull holds the store; returns their diff_ids. */
  gc(o?: StoreLockOptions): Promise<string[]>
}

/** Opens (creating if needed) the store at `root` and removes what dead processes left behind. */
export async function openLayerStore(root: string): Promise<LayerStore> {
  const store = new DirLayerStore(root)
  await store.init()
  return store
}

class DirLayerStore implements LayerStore {
  private readonly layersDir: string
  private readonly imagesDir: string
  private readonly stagingDir: string
  private readonly trashDir: string

  constructor(readonly root: string) {
    this.layersDir = join(root, 'layers', 'sha256')
    this.imagesDir = join(root, 'images')
    this.stagingDir = join(root, 'staging')
    this.trashDir = join(root, 'trash')
  }

  async init(): Promise<void> {
    for (const d of [this.layersDir, this.imagesDir, this.stagingDir, this.trashDir]) {
      await mkdir(d, { recursive: true, mode: 0o700 })
    }
    for (const d of [this.stagingDir, this.trashDir]) {
      for (const name of await readdir(d)) {
        if (!ownerAlive(name)) await rm(join(d, name), { recursive: true, force: true })
      }
    }
  }

  unpack(
    diffId: string,
    tar: Readable,
    o: Io & LayerLimits & { onWarning?: (w: UnpackWarning) => void } = {},
  ): Promise<StoredLayer & { reused: boolean }> {
    return this.stage(diffId, (dest, uo) => unpackHashed(tar, dest, uo), o).then(
      (layer) => {
        if (layer.reused) tar.destroy()
        return layer
      },
      (err: unknown) => {
        tar.destroy()
        throw err
      },
    )
  }

  async stage(
    diffId: string,
    fill: StageFill,
    o: Io & LayerLimits & { onWarning?: (w: UnpackWarning) => void } = {},
  ): Promise<StoredLayer & { reused: boolean }> {
    const hex = sha256Hex(diffId)
    const existing = await this.get(diffId)
    if (existing) return { ...existing, reused: true }

    const name = `${process.pid}-${randomBytes(8).toString('hex')}`
    const staging = join(this.stagingDir, name)
    ACTIVE.add(name)
    await mkdir(join(staging, 'rootfs'), { recursive: true, mode: 0o755 })
    try {
      // === unpack, hashing the exact bytes the unpacker reads
      const overlayMarkers = process.getuid?.() === 0
      const { diffId: actual, result } = await fill(join(staging, 'rootfs'), {
        ...o,
        whiteouts: overlayMarkers ? 'overlay' : 'record',
        durable: true,
      })
      // === verify before anything becomes visible
      if (actual !== diffId) {
        throw new CofferError('ERR_IMAGE_DIFF_ID_MISMATCH', `layer content is ${actual}, expected ${diffId}`)
      }
      const meta: LayerMeta = {
        schemaVersion: 1,
        diffId,
        overlayMarkers,
        entries: result.entries,
        bytes: result.bytes,
        whiteouts: result.whiteouts,
        opaqueDirs: result.opaqueDirs,
        externalLinks: result.externalLinks,
        implicitDirs: result.implicitDirs,
        xattrs: result.xattrs,
        createdAt: new Date().toISOString(),
      }
      // The unpacker fsynced every file and directory of the tree; the record is synced as written.
      await writeFileAtomic(join(staging, 'layer.json'), JSON.stringify(meta))
      // === commit by rename, durable once the parent directory is synced
      const final = join(this.layersDir, hex)
      try {
        await rename(staging, final)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err
        // Another process committed the same layer first: identical by digest, so reuse it.
        await rm(staging, { recursive: true, force: true })
        const winner = await this.get(diffId)
        if (!winner) throw new CofferError('ERR_IMAGE_STORE_CORRUPT', `layer ${diffId} vanished after commit`)
        return { ...winner, reused: true }
      }
      await fsyncDir(this.layersDir)
      return { diffId, rootfs: join(final, 'rootfs'), meta, reused: false }
    } catch (err) {
      await rm(staging, { recursive: true, force: true })
      throw err
    } finally {
      ACTIVE.delete(name)
    }
  }

  async get(diffId: string): Promise<StoredLayer | undefined> {
    const dir = join(this.layersDir, sha256Hex(diffId))
    const raw = await readOptionalFileLimited(
      join(dir, 'layer.json'),
      MAX_LAYER_META_BYTES,
      'layer record',
      'ERR_IMAGE_STORE_CORRUPT',
    )
    if (raw === undefined) {
      // A layer directory without its record can only come from outside interference.
      const present = await readdir(dir).then(
        () => true,
        () => false,
      )
      if (present) throw new CofferError('ERR_IMAGE_STORE_CORRUPT', `layer ${diffId} has no layer.json`)
      return undefined
    }
    const meta = parseRecord(LayerMetaSchema, raw, `layer ${diffId}`)
    if (meta.diffId !== diffId)
      throw new CofferError('ERR_IMAGE_STORE_CORRUPT', `layer ${diffId} record names another layer`)
    return { diffId, rootfs: join(dir, 'rootfs'), meta }
  }

  async list(): Promise<string[]> {
    const names = await readdir(this.layersDir)
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n}`)
  }

  async putImage(record: ImageRecord, mode: 'merge' | 'replace' = 'merge'): Promise<void> {
    const known =
      mode === 'merge' && record.references
        ? (await this.getImage(record.manifestDigest))?.references
        : undefined
    const references = known ? [...new Set([...known, ...record.references!])].sort() : record.references
    const valid = ImageRecordSchema.parse({ ...record, ...(references ? { references } : {}) })
    await writeFileAtomic(
      join(this.imagesDir, `${sha256Hex(valid.manifestDigest)}.json`),
      JSON.stringify(valid),
    )
  }

  async getImage(manifestDigest: string): Promise<ImageRecord | undefined> {
    const path = join(this.imagesDir, `${sha256Hex(manifestDigest)}.json`)
    const raw = await readOptionalFileLimited(
      path,
      MAX_LAYER_META_BYTES,
      'image record',
      'ERR_IMAGE_STORE_CORRUPT',
    )
    return raw === undefined ? undefined : parseRecord(ImageRecordSchema, raw, `image ${manifestDigest}`)
  }

  async listImages(): Promise<ImageRecord[]> {
    const records: ImageRecord[] = []
    for (const name of await readdir(this.imagesDir)) {
      if (!/^[0-9a-f]{64}\.json$/.test(name)) continue
      const rec = await this.getImage(`sha256:${name.slice(0, 64)}`)
      if (rec) records.push(rec)
    }
    return records
  }

  async deleteImage(manifestDigest: string): Promise<void> {
    await rm(join(this.imagesDir, `${sha256Hex(manifestDigest)}.json`), { force: true })
    await fsyncDir(this.imagesDir)
  }

  hold(o: StoreLockOptions = {}): Promise<StoreLock> {
    return lockStoreShared(this.root, o)
  }

  async gc(o: StoreLockOptions = {}): Promise<string[]> {
    const lock = await lockStoreExclusive(this.root, o)
    try {
      return await this.collect()
    } finally {
      await lock.release()
    }
  }

  private async collect(): Promise<string[]> {
    const referenced = new Set<string>()
    for (const name of await readdir(this.imagesDir)) {
      if (!/^[0-9a-f]{64}\.json$/.test(name)) continue
      const rec = await this.getImage(`sha256:${name.slice(0, 64)}`)
      for (const d of rec?.diffIds ?? []) referenced.add(d)
    }
    const removed: string[] = []
    for (const diffId of await this.list()) {
      if (referenced.has(diffId)) continue
      // Rename out first: the layer disappears atomically; a crash mid-delete leaves only trash.
      const name = `${process.pid}-${randomBytes(8).toString('hex')}`
      const trash = join(this.trashDir, name)
      ACTIVE.add(name)
      try {
        await rename(join(this.layersDir, sha256Hex(diffId)), trash)
        await rm(trash, { recursive: true, force: true })
      } finally {
        ACTIVE.delete(name)
      }
      removed.push(diffId)
    }
    if (removed.length > 0) await fsyncDir(this.layersDir)
    return removed
  }
}

function sha256Hex(digest: string): string {
  const d = parseDigest(digest)
  if (d.algorithm !== 'sha256') {
    throw new CofferError('ERR_INVALID_ARGUMENT', `layer store keys are sha256 digests, not ${d.algorithm}`)
  }
  return d.encoded
}

function parseRecord<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } },
  raw: Buffer,
  what: string,
): T {
  let json: unknown
  try {
    json = JSON.parse(raw.toString('utf8'))
  } catch (cause) {
    throw new CofferError('ERR_IMAGE_STORE_CORRUPT', `${what}: record is not JSON`, { cause })
  }
  const r = schema.safeParse(json)
  if (!r.success) throw new CofferError('ERR_IMAGE_STORE_CORRUPT', `${what}: record is invalid`)
  return r.data
}

/** `<pid>-<rand>`: true while process <pid> exists (EPERM means it exists but is not ours). */
function ownerAlive(name: string): boolean {
  const pid = Number(/^(\d+)-/.exec(name)?.[1])
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  // Our own pid: alive only if this process is using it now; else a previous process that had our
  // pid (a container's pid 1 after a restart) left it.
  if (pid === process.pid) return ACTIVE.has(name)
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
