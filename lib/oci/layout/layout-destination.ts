import type { Io } from '../../util/io.js'
import {
  CallOrder,
  type BlobIngest,
  type BlobOpener,
  type ImageDestination,
  type ImageSource,
} from '../image-transport.js'
import type { ManifestDocument } from '../manifest.js'
import type { Descriptor } from '../schemas.js'
import { openLayout, type LayoutStore } from './layout-store.js'

/**
 * Writes an image into `oci:DIR[:TAG]`, creating the layout if needed. Blobs and manifests land
 * as verified blobs; the tag in index.json moves only at `commit`.
 */
export async function openLayoutDestination(dir: string, tag: string | undefined): Promise<ImageDestination> {
  const store = await openLayout(dir, { create: true })
  return new LayoutDestination(store, tag, `oci:${dir}${tag ? `:${tag}` : ''}`)
}

class LayoutDestination implements ImageDestination {
  private readonly order: CallOrder

  constructor(
    private readonly store: LayoutStore,
    private readonly tag: string | undefined,
    readonly name: string,
  ) {
    this.order = new CallOrder(name)
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    const present = (await this.store.blobSize(desc.digest)) === desc.size
    if (present) this.order.blobWritten(desc.digest)
    return present
  }

  async tryMountBlob(_desc: Descriptor, _source: ImageSource): Promise<boolean> {
    return false
  }

  async putBlob(desc: Descriptor, open: BlobOpener, o: Io = {}): Promise<void> {
    await this.store.writeBlob(desc, await open(0), o)
    this.order.blobWritten(desc.digest)
  }

  async openBlobIngest(): Promise<BlobIngest> {
    const ingest = await this.store.openIngest()
    return {
      ...ingest,
      commit: async (desc) => {
        await ingest.commit(desc)
        this.order.blobWritten(desc.digest)
      },
    }
  }

  async putManifest(doc: ManifestDocument, o: Io & { top?: boolean } = {}): Promise<void> {
    this.order.manifestWritten(doc, o.top ?? false)
    await this.store.writeBlobBytes(doc.bytes, o)
  }

  async commit(o: Io = {}): Promise<void> {
    const top = this.order.committing()
    await this.store.setTag(
      { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length },
      this.tag,
      o,
    )
  }

  async close(): Promise<void> {}
}
