import type { Readable } from 'node:stream'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import type { Digest } from './digest.js'
import type { ManifestDocument } from './manifest.js'
import type { Descriptor } from './schemas.js'

/**
 * Where images come from (containers/image `ImageSource`). A source is opened for one reference;
 * `getManifest()` without a digest returns what the reference names (its tag resolved once and
 * pinned, so a tag moved mid-copy cannot mix two images).
 */
export interface ImageSource {
  /** For messages: `oci:/dir:tag`, `docker://host/repo:tag`. */
  readonly name: string
  /** Where a registry source's blobs live, so a destination on the same registry can mount them. */
  readonly registryLocation?: { readonly host: string; readonly repository: string }
  getManifest(digest?: Digest, o?: Io): Promise<ManifestDocument>
  /**
   * The blob's bytes from `offset`, **unverified**: callers check them with `verifyingStream`
   * before anything is committed. A registry source resumes dropped downloads by itself.
   */
  getBlob(desc: Descriptor, o?: Io & { offset?: number }): Promise<Readable>
  /** Small blobs (configs) read whole and verified. */
  getBlobBytes(desc: Descriptor, limit: number, o?: Io): Promise<Buffer>
  /**
   * Sources on this machine (layouts): the path of the blob's file, **unverified**, for a layer
   * step that reads it directly (see `LayerFiles`). ERR_OCI_BLOB_NOT_FOUND if it is missing.
   */
  blobFile?(desc: Descriptor, o?: Io): Promise<string>
  close(): Promise<void>
}

/**
 * A blob file being written inside a destination by a writer that hashes what it writes itself
 * (a layer step on a worker thread): no stream hop, no second hash pass. containerd's content
 * `Writer`, minus the digest check, which is the writer's job here. Nothing is visible until
 * `commit`; `abort` removes the file (and is harmless after a commit).
 */
export interface BlobIngest {
  /** Not created yet: the writer creates it exclusively (0600). */
  readonly path: string
  /** After the writer is done: re-checks the size and makes the file durable (fsync). */
  sync(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<void>
  /** After `sync`: makes the file the blob `desc`. The writer vouches for the digest. */
  commit(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<void>
  abort(): Promise<void>
}

/** Opens the stream again from `offset`, for a retried or resumed upload. */
export type BlobOpener = (offset: number) => Promise<Readable>

/**
 * Where images go (containers/image `ImageDestination`). Call order, enforced with
 * ERR_OCI_OUT_OF_ORDER:
 *   1. `hasBlob` / `tryMountBlob` / `putBlob` for every blob a manifest names;
 *   2. `putManifest` for child manifests, then for the top-level one (`top: true`);
 *   3. `commit` once; nothing after it.
 * A blob is visible only after its digest and size were checked; until `commit`, the
 * reference (tag) does not point at the new image.
 */
export interface ImageDestination {
  readonly name: string
  /** True if the blob is already there; it then counts as written. */
  hasBlob(desc: Descriptor, o?: Io): Promise<boolean>
  /** Cross-repository mount from the source, when both live on one registry. True if it worked. */
  tryMountBlob(desc: Descriptor, source: ImageSource, o?: Io): Promise<boolean>
  /**
   * Writes a blob from `open(0)`; it may call `open(offset)` again to retry or resume. The destination
   * verifies digest and size before the blob becomes visible.
   */
  putBlob(desc: Descriptor, open: BlobOpener, o?: Io): Promise<void>
  /** Destinations on this machine (layouts): a file to write a new blob into (see `BlobIngest`). */
  openBlobIngest?(o?: Io): Promise<BlobIngest>
  putManifest(doc: ManifestDocument, o?: Io & { top?: boolean }): Promise<void>
  /** Makes the reference point at the top-level manifest. */
  commit(o?: Io): Promise<void>
  close(): Promise<void>
}

/** Descriptors a manifest or index needs before it can be written (its blobs or children). */
export function childrenOf(doc: ManifestDocument): Descriptor[] {
  return doc.kind === 'index' ? doc.index.manifests : [doc.manifest.config, ...doc.manifest.layers]
}

/** Keeps the ImageDestination call order: blobs, manifests, commit. */
export class CallOrder {
  private readonly written = new Set<string>()
  private top: ManifestDocument | undefined
  private committed = false

  constructor(private readonly name: string) {}

  blobWritten(digest: Digest): void {
    this.assertOpen()
    this.written.add(digest)
  }

  /** Throws unless every child of `doc` was written; records the manifest itself as written. */
  manifestWritten(doc: ManifestDocument, top: boolean): void {
    this.assertOpen()
    if (this.top) throw this.outOfOrder('a manifest after the top-level manifest')
    const missing = childrenOf(doc).find((d) => !this.written.has(d.digest))
    if (missing)
      throw this.outOfOrder(`manifest ${doc.digest} before its ${missing.mediaType} ${missing.digest}`)
    this.written.add(doc.digest)
    if (top) this.top = doc
  }

  /** The top-level manifest; throws if commit comes before it. */
  committing(): ManifestDocument {
    this.assertOpen()
    if (!this.top) throw this.outOfOrder('commit before the top-level manifest')
    this.committed = true
    return this.top
  }

  private assertOpen(): void {
    if (this.committed) throw this.outOfOrder('a write after commit')
  }

  private outOfOrder(what: string): CofferError {
    return new CofferError('ERR_OCI_OUT_OF_ORDER', `${this.name}: ${what}`)
  }
}
