import type { Readable } from 'node:stream'
import { CofferError } from '../../util/errors.js'
import type { Io } from '../../util/io.js'
import type { Digest } from '../digest.js'
import type { ImageSource } from '../image-transport.js'
import type { ManifestDocument } from '../manifest.js'
import type { Descriptor } from '../schemas.js'
import { openLayout, type LayoutStore } from './layout-store.js'

/** Reads an image from `oci:DIR[:TAG]`. */
export async function openLayoutSource(dir: string, tag: string | undefined): Promise<ImageSource> {
  const store = await openLayout(dir)
  const top = await store.resolve(tag)
  return new LayoutSource(store, top, `oci:${dir}${tag ? `:${tag}` : ''}`)
}

class LayoutSource implements ImageSource {
  constructor(
    private readonly store: LayoutStore,
    private readonly top: Descriptor,
    readonly name: string,
  ) {}

  async getManifest(digest?: Digest, o?: Io): Promise<ManifestDocument> {
    if (!digest || digest === this.top.digest) return this.store.readManifest(this.top, o)
    // A child of an index: its media type is checked against the index's descriptor by the caller.
    const size = await this.store.blobSize(digest)
    if (size === undefined)
      throw new CofferError('ERR_OCI_BLOB_NOT_FOUND', `${this.name} has no manifest ${digest}`)
    return this.store.readManifest({ mediaType: '', digest, size }, o)
  }

  getBlob(desc: Descriptor, o: Io & { offset?: number } = {}): Promise<Readable> {
    return this.store.openBlob(desc.digest, o.offset ? { offset: o.offset } : {})
  }

  getBlobBytes(desc: Descriptor, limit: number, o?: Io): Promise<Buffer> {
    return this.store.readBlob(desc, limit, o)
  }

  async blobFile(desc: Descriptor): Promise<string> {
    if ((await this.store.blobSize(desc.digest)) === undefined)
      throw new CofferError('ERR_OCI_BLOB_NOT_FOUND', `${this.store.dir} has no blob ${desc.digest}`)
    return this.store.blobPath(desc.digest)
  }

  async close(): Promise<void> {}
}
