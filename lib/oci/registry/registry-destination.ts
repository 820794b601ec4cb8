import { CofferError } from '../../util/errors.js'
import type { Io } from '../../util/io.js'
import { CallOrder, type BlobOpener, type ImageDestination, type ImageSource } from '../image-transport.js'
import type { ManifestDocument } from '../manifest.js'
import { formatDockerReference, type DockerReference } from '../reference.js'
import type { Descriptor } from '../schemas.js'
import { pushEndpoint, type RegistryAccess } from './access.js'
import type { UploadOptions } from './blob-upload.js'
import { addToReferrersTag } from './referrers-tag.js'
import type { Repository } from './repository.js'

/**
 * Writes an image to `docker://REF`. Blobs are skipped when present, mounted when the source is
 * another repository of the same registry, else uploaded. The top-level manifest is PUT only at
 * `commit`, so the tag moves last.
 */
export function openRegistryDestination(
  ref: DockerReference,
  access: RegistryAccess & UploadOptions,
): ImageDestination {
  return new RegistryDestination(ref, pushEndpoint(ref, access), access.chunkSize)
}

class RegistryDestination implements ImageDestination {
  readonly name: string
  private readonly order: CallOrder

  constructor(
    private readonly ref: DockerReference,
    private readonly repo: Repository,
    private readonly chunkSize: number | undefined,
  ) {
    this.name = `docker://${formatDockerReference(ref)}`
    this.order = new CallOrder(this.name)
  }

  async hasBlob(desc: Descriptor, o?: Io): Promise<boolean> {
    const present = await this.repo.hasBlob(desc, o)
    if (present) this.order.blobWritten(desc.digest)
    return present
  }

  async tryMountBlob(desc: Descriptor, source: ImageSource, o?: Io): Promise<boolean> {
    const from = source.registryLocation
    if (!from || from.host !== this.repo.registry.host || from.repository === this.repo.name) return false
    const mounted = await this.repo.mountBlob(desc, from.repository, o)
    if (mounted) this.order.blobWritten(desc.digest)
    return mounted
  }

  async putBlob(desc: Descriptor, open: BlobOpener, o: Io = {}): Promise<void> {
    await this.repo.uploadBlob(desc, open, { ...o, ...(this.chunkSize ? { chunkSize: this.chunkSize } : {}) })
    this.order.blobWritten(desc.digest)
  }

  async putManifest(doc: ManifestDocument, o: Io & { top?: boolean } = {}): Promise<void> {
    this.order.manifestWritten(doc, o.top ?? false)
    if (o.top) {
      if (this.ref.digest && this.ref.digest !== doc.digest) {
        throw new CofferError(
          'ERR_INVALID_ARGUMENT',
          `${this.name} names digest ${this.ref.digest}, but the image being written is ${doc.digest}`,
        )
      }
      return // written at commit
    }
    await this.write(doc.digest, doc, o)
  }

  async commit(o: Io = {}): Promise<void> {
    const top = this.order.committing()
    await this.write(this.ref.tag ?? top.digest, top, o)
  }

  private async write(reference: string, doc: ManifestDocument, o: Io): Promise<void> {
    const { subjectIndexed } = await this.repo.putManifest(reference, doc, o)
    const subject = doc.kind === 'manifest' ? doc.manifest.subject : doc.index.subject
    if (subject && !subjectIndexed) await addToReferrersTag(this.repo, subject, doc, o)
  }

  async close(): Promise<void> {
    await this.repo.registry.close()
  }
}
