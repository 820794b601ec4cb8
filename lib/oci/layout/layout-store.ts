import { createReadStream } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import type { Readable } from 'node:stream'
import lockfile from 'proper-lockfile'
import { fsyncDir, streamToFileAtomic, tempPathFor, writeFileAtomic } from '../../util/atomic-file.js'
import { CofferError } from '../../util/errors.js'
import { readAllLimited, type Io } from '../../util/io.js'
import { MAX_LAYOUT_INDEX_BYTES, MAX_MANIFEST_BYTES } from '../../util/limits.js'
import { digestOf, parseDigest, verifyBytes, verifyingStream, type Digest } from '../digest.js'
import type { BlobIngest } from '../image-transport.js'
import { parseManifestDocument, type ManifestDocument } from '../manifest.js'
import { MediaType } from '../media-types.js'
import { describeIssues, indexSchema, ociLayoutFileSchema, type Descriptor, type Index } from '../schemas.js'

/** The annotation that names an image in an OCI layout (image-spec `annotations.md`). */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name'
const LAYOUT_VERSION = '1.0.0'
/** Temp files older than this are left over from a crashed writer; `gc` removes them. */
const STALE_TEMP_MS = 60 * 60 * 1000

/**
 * An OCI image layout directory (image-spec `image-layout.md`): `oci-layout`, `index.json`,
 * `blobs/<alg>/<hex>`.
 *
 * Blobs are content-addressed and written atomically (temp file, digest check, fsync, rename), so
 * concurrent writers of the same blob are harmless. `index.json` is read-modify-written under a
 * lock file, so concurrent taggers do not lose each other's entries. Unknown files are tolerated.
 */
export interface LayoutStore {
  readonly dir: string
  readIndex(o?: Io): Promise<Index>
  /** The descriptor tagged `tag`; without a tag, the only image in the layout. */
  resolve(tag: string | undefined, o?: Io): Promise<Descriptor>
  blobPath(digest: Digest): string
  /** Size of a stored blob, or undefined if absent. */
  blobSize(digest: Digest): Promise<number | undefined>
  /** Raw blob stream from `offset`; unverified (verify with `verifyingStream`). */
  openBlob(digest: Digest, o?: { offset?: number }): Promise<Readable>
  /** Reads and verifies a small blob (manifest, config). */
  readBlob(desc: Pick<Descriptor, 'digest' | 'size'>, limit: number, o?: Io): Promise<Buffer>
  readManifest(desc: Descriptor, o?: Io): Promise<ManifestDocument>
  /** Streams a blob into the store; it appears only if digest and size match. */
  writeBlob(expected: Pick<Descriptor, 'digest' | 'size'>, source: Readable, o?: Io): Promise<void>
  writeBlobBytes(data: Uint8Array, o?: Io): Promise<Digest>
  /**
   * A temp file beside the blobs for a writer that computes digest and size itself (see
   * `BlobIngest`); `commit` makes it world-readable (0644) and renames it into place.
   */
  openIngest(): Promise<BlobIngest>
  /** Points `tag` (or an untagged entry) at `desc` in index.json, replacing an earlier holder of the tag. */
  setTag(desc: Descriptor, tag: string | undefined, o?: Io): Promise<void>
  /** Removes the tag's entry from index.json. */
  removeTag(tag: string, o?: Io): Promise<void>
  /** Deletes blobs that no index.json entry reaches, and stale temp files. */
  gc(o?: Io): Promise<{ removedBlobs: number; removedBytes: number }>
}

/**
 * Opens a layout. With `create`, a missing or empty directory becomes a new layout; a non-empty
 * directory that is not a layout is refused rather than written into.
 */
export async function openLayout(dir: string, o: { create?: boolean } = {}): Promise<LayoutStore> {
  let layoutFile: Buffer | undefined
  try {
    layoutFile = await readFile(join(dir, 'oci-layout'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw layoutError(dir, err)
  }
  if (layoutFile) {
    let parsed: unknown
    try {
      parsed = JSON.parse(layoutFile.toString('utf8'))
    } catch (cause) {
      throw new CofferError('ERR_OCI_LAYOUT_INVALID', `${dir}/oci-layout is not valid JSON`, { cause })
    }
    const ok = ociLayoutFileSchema.safeParse(parsed)
    if (!ok.success)
      throw new CofferError('ERR_OCI_LAYOUT_INVALID', `${dir}/oci-layout: ${describeIssues(ok.error)}`)
    if (ok.data.imageLayoutVersion !== LAYOUT_VERSION) {
      throw new CofferError(
        'ERR_OCI_LAYOUT_INVALID',
        `${dir}: unsupported imageLayoutVersion ${ok.data.imageLayoutVersion}`,
      )
    }
    return new Store(dir)
  }
  if (!o.create) {
    throw new CofferError(
      'ERR_OCI_LAYOUT_NOT_FOUND',
      `${dir} is not an OCI image layout (no oci-layout file)`,
    )
  }
  const entries = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return []
    throw layoutError(dir, err)
  })
  if (entries.length > 0) {
    throw new CofferError(
      'ERR_OCI_LAYOUT_INVALID',
      `${dir} exists, is not empty and is not an OCI image layout; refusing to write into it`,
    )
  }
  // Build the skeleton beside the target and rename it into place: rename(2) replaces an empty
  // directory atomically, so concurrent creators never see half a layout; the loser of the race
  // finds the winner's complete layout and uses it.
  await mkdir(dirname(resolve(dir)), { recursive: true })
  const staging = `${resolve(dir)}.tmp-${randomBytes(6).toString('hex')}`
  try {
    await mkdir(join(staging, 'blobs', 'sha256'), { recursive: true })
    await writeFileAtomic(
      join(staging, 'index.json'),
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }),
    )
    await writeFileAtomic(join(staging, 'oci-layout'), JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }))
    await rename(staging, dir)
  } catch (err) {
    await rm(staging, { recursive: true, force: true })
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return openLayout(dir)
    throw err
  }
  await fsyncDir(dirname(resolve(dir)))
  return new Store(dir)
}

function layoutError(dir: string, cause: unknown): CofferError {
  return new CofferError(
    'ERR_OCI_LAYOUT_INVALID',
    `cannot read OCI layout ${dir}: ${(cause as Error).message}`,
    { cause },
  )
}

class Store implements LayoutStore {
  constructor(readonly dir: string) {}

  private get indexPath(): string {
    return join(this.dir, 'index.json')
  }

  async readIndex(): Promise<Index> {
    let bytes: Buffer
    try {
      bytes = await readAllLimited(
        createReadStream(this.indexPath),
        MAX_LAYOUT_INDEX_BYTES,
        `${this.indexPath}`,
        'ERR_OCI_MANIFEST_TOO_LARGE',
      )
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new CofferError('ERR_OCI_LAYOUT_INVALID', `${this.dir} has no index.json`)
      }
      throw err
    }
    let json: unknown
    try {
      json = JSON.parse(bytes.toString('utf8'))
    } catch (cause) {
      throw new CofferError('ERR_OCI_LAYOUT_INVALID', `${this.indexPath} is not valid JSON`, { cause })
    }
    const parsed = indexSchema.safeParse(json)
    if (!parsed.success)
      throw new CofferError('ERR_OCI_LAYOUT_INVALID', `${this.indexPath}: ${describeIssues(parsed.error)}`)
    return parsed.data
  }

  async resolve(tag: string | undefined): Promise<Descriptor> {
    const { manifests } = await this.readIndex()
    if (tag === undefined) {
      if (manifests.length === 1) return manifests[0]!
      throw new CofferError(
        manifests.length === 0 ? 'ERR_OCI_TAG_NOT_FOUND' : 'ERR_OCI_TAG_AMBIGUOUS',
        manifests.length === 0
          ? `${this.dir} holds no image`
          : `${this.dir} holds ${manifests.length} images; name one as oci:${this.dir}:TAG (tags: ${tagsOf(manifests).join(', ') || 'none'})`,
      )
    }
    const found = manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === tag)
    if (found.length === 1) return found[0]!
    if (found.length > 1)
      throw new CofferError(
        'ERR_OCI_TAG_AMBIGUOUS',
        `${this.dir}: tag "${tag}" names ${found.length} entries in index.json`,
      )
    throw new CofferError(
      'ERR_OCI_TAG_NOT_FOUND',
      `${this.dir} has no image tagged "${tag}" (tags: ${tagsOf(manifests).join(', ') || 'none'})`,
    )
  }

  blobPath(digest: Digest): string {
    const { algorithm, encoded } = parseDigest(digest)
    return join(this.dir, 'blobs', algorithm, encoded)
  }

  async blobSize(digest: Digest): Promise<number | undefined> {
    try {
      const st = await stat(this.blobPath(digest))
      return st.isFile() ? st.size : undefined
    } catch {
      return undefined
    }
  }

  async openBlob(digest: Digest, o: { offset?: number } = {}): Promise<Readable> {
    const path = this.blobPath(digest)
    // 64 KiB reads: six layers in flight stay small (measured: 1 MiB buffers cost 33 MiB of peak RSS, no speed).
    const stream = createReadStream(path, { start: o.offset ?? 0, highWaterMark: 64 * 1024 })
    // Surface ENOENT as a coded error before the caller starts piping.
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve())
      stream.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          err.code === 'ENOENT'
            ? new CofferError('ERR_OCI_BLOB_NOT_FOUND', `${this.dir} has no blob ${digest}`)
            : err,
        ),
      )
    })
    return stream
  }

  async readBlob(desc: Pick<Descriptor, 'digest' | 'size'>, limit: number): Promise<Buffer> {
    if (desc.size > limit) {
      throw new CofferError(
        'ERR_OCI_MANIFEST_TOO_LARGE',
        `blob ${desc.digest} is ${desc.size} bytes, over the ${limit}-byte limit`,
      )
    }
    const bytes = await readAllLimited(
      await this.openBlob(desc.digest),
      limit,
      `blob ${desc.digest}`,
      'ERR_OCI_MANIFEST_TOO_LARGE',
    )
    if (bytes.length !== desc.size) {
      throw new CofferError(
        'ERR_OCI_SIZE_MISMATCH',
        `blob ${desc.digest} has ${bytes.length} bytes, expected ${desc.size}`,
      )
    }
    verifyBytes(bytes, desc.digest, `blob ${desc.digest}`)
    return bytes
  }

  async readManifest(desc: Descriptor): Promise<ManifestDocument> {
    const bytes = await this.readBlob(desc, MAX_MANIFEST_BYTES)
    return parseManifestDocument(bytes, {
      declaredType: desc.mediaType,
      expectedDigest: desc.digest,
      source: `manifest ${desc.digest}`,
    })
  }

  async writeBlob(
    expected: Pick<Descriptor, 'digest' | 'size'>,
    source: Readable,
    o: Io = {},
  ): Promise<void> {
    const path = this.blobPath(expected.digest)
    await mkdir(join(path, '..'), { recursive: true })
    await streamToFileAtomic(path, source, [verifyingStream(expected.digest, expected.size)], o)
  }

  async openIngest(): Promise<BlobIngest> {
    const dir = join(this.dir, 'blobs', 'sha256')
    await mkdir(dir, { recursive: true })
    // Named like streamToFileAtomic's temp files, so gc removes one a crashed writer left behind.
    const path = tempPathFor(join(dir, 'ingest'))
    const abort = (): Promise<void> => rm(path, { force: true })
    return {
      path,
      abort,
      sync: async (desc) => {
        try {
          const fh = await open(path, 'r')
          try {
            const { size } = await fh.stat()
            if (size !== desc.size)
              throw new CofferError(
                'ERR_OCI_SIZE_MISMATCH',
                `blob ${desc.digest} has ${size} bytes, expected ${desc.size}`,
              )
            await fh.sync()
          } finally {
            await fh.close()
          }
        } catch (err) {
          await abort()
          throw err
        }
      },
      commit: async (desc) => {
        const target = this.blobPath(desc.digest)
        try {
          // Written 0600 (it may hold plaintext before its HMAC was checked); a blob is 0644.
          await chmod(path, 0o644)
          await mkdir(dirname(target), { recursive: true })
          await rename(path, target)
        } catch (err) {
          await abort()
          throw err
        }
        await fsyncDir(dirname(target))
      },
    }
  }

  async writeBlobBytes(data: Uint8Array): Promise<Digest> {
    const digest = digestOf(data)
    const path = this.blobPath(digest)
    if ((await this.blobSize(digest)) === data.length) return digest
    await mkdir(join(path, '..'), { recursive: true })
    await writeFileAtomic(path, data)
    return digest
  }

  async setTag(desc: Descriptor, tag: string | undefined): Promise<void> {
    await this.updateIndex((index) => {
      const entry: Descriptor = { ...desc }
      if (tag !== undefined) entry.annotations = { ...desc.annotations, [REF_NAME_ANNOTATION]: tag }
      // As containers/image: the tag moves to the new image; an untagged image is added once.
      const kept = index.manifests.filter((m) =>
        tag !== undefined
          ? m.annotations?.[REF_NAME_ANNOTATION] !== tag
          : !(m.digest === desc.digest && !m.annotations?.[REF_NAME_ANNOTATION]),
      )
      return { ...index, manifests: [...kept, entry] }
    })
  }

  async removeTag(tag: string): Promise<void> {
    await this.updateIndex((index) => {
      const kept = index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== tag)
      if (kept.length === index.manifests.length)
        throw new CofferError('ERR_OCI_TAG_NOT_FOUND', `${this.dir} has no image tagged "${tag}"`)
      return { ...index, manifests: kept }
    })
  }

  /** Read-modify-write of index.json under its lock. */
  private async updateIndex(change: (index: Index) => Index): Promise<void> {
    await this.withIndexLock(async () => {
      const next = change(await this.readIndex())
      await writeFileAtomic(this.indexPath, JSON.stringify(next))
    })
  }

  /** `index.json.lock` (proper-lockfile: an mkdir lock, refreshed while held, stale after 10 s). */
  private async withIndexLock<T>(work: () => Promise<T>): Promise<T> {
    const release = await lockfile.lock(this.indexPath, {
      retries: { retries: 200, factor: 1.2, minTimeout: 5, maxTimeout: 200 },
      stale: 10_000,
      realpath: false,
    })
    try {
      return await work()
    } finally {
      await release()
    }
  }

  /**
   * Mark and sweep under the index lock, so no tag moves meanwhile. A copy into this layout that
   * is still writing blobs has not tagged them yet: run gc when no copy into the layout is running.
   */
  async gc(): Promise<{ removedBlobs: number; removedBytes: number }> {
    return this.withIndexLock(() => this.sweep())
  }

  private async sweep(): Promise<{ removedBlobs: number; removedBytes: number }> {
    const live = new Set<string>()
    const index = await this.readIndex()
    const visit = async (desc: Descriptor): Promise<void> => {
      if (live.has(desc.digest)) return
      live.add(desc.digest)
      if ((await this.blobSize(desc.digest)) === undefined) return
      const isManifestLike =
        desc.mediaType === MediaType.OciManifest ||
        desc.mediaType === MediaType.DockerManifest ||
        desc.mediaType === MediaType.OciIndex ||
        desc.mediaType === MediaType.DockerManifestList
      if (!isManifestLike) return
      const doc = await this.readManifest(desc)
      const children =
        doc.kind === 'index' ? doc.index.manifests : [doc.manifest.config, ...doc.manifest.layers]
      for (const child of children) await visit(child)
    }
    for (const desc of index.manifests) await visit(desc)

    let removedBlobs = 0
    let removedBytes = 0
    const blobsDir = join(this.dir, 'blobs')
    for (const algorithm of await readdir(blobsDir).catch(() => [] as string[])) {
      const algDir = join(blobsDir, algorithm)
      for (const name of await readdir(algDir).catch(() => [] as string[])) {
        const path = join(algDir, name)
        const st = await stat(path).catch(() => undefined)
        if (!st?.isFile()) continue
        const isTemp = name.startsWith('.tmp-')
        if (isTemp ? Date.now() - st.mtimeMs < STALE_TEMP_MS : live.has(`${algorithm}:${name}`)) continue
        await rm(path, { force: true })
        removedBlobs += isTemp ? 0 : 1
        removedBytes += st.size
      }
    }
    return { removedBlobs, removedBytes }
  }
}

function tagsOf(manifests: readonly Descriptor[]): string[] {
  return manifests.flatMap((m) => m.annotations?.[REF_NAME_ANNOTATION] ?? [])
}
