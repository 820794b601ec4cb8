/**
 * The layer store's image records by name, for commands that work on the store without the image
 * service (`coffer image-service list|remove --store DIR`): `coffer pull` writes a record per image,
 * naming every reference it was pulled as, and only a record keeps its layers from gc.
 */
import { formatImageName } from '../oci/image-name.js'
import { CofferError } from '../util/errors.js'
import type { ImageRecord, LayerStore } from './layer-store/index.js'
import { serviceImageName } from './service/server.js'

const DIGEST = /^sha256:[0-9a-f]{64}$/

/**
 * Forgets `image`: a digest (`sha256:…`, the image digest a pull prints) drops its record; a
 * reference (`HOST/REPO:TAG` or `docker://…`) drops that name from every record, and a record
 * with its last name. The layers go at the next gc unless another record uses them.
 * ERR_IMAGE_NOT_FOUND when nothing matches. Returns the digests of the records dropped.
 */
export async function removeStoredImage(store: LayerStore, image: string): Promise<string[]> {
  if (DIGEST.test(image)) {
    if (!(await store.getImage(image))) throw notFound(image)
    await store.deleteImage(image)
    return [image]
  }
  const name = formatImageName(serviceImageName(image))
  const matching = (await store.listImages()).filter((r) => r.references?.includes(name))
  if (matching.length === 0) throw notFound(image)
  const dropped: string[] = []
  for (const record of matching) {
    const references = record.references!.filter((r) => r !== name)
    if (references.length > 0) await store.putImage({ ...record, references }, 'replace')
    else {
      await store.deleteImage(record.manifestDigest)
      dropped.push(record.manifestDigest)
    }
  }
  return dropped
}

/** Every record, names sorted, records by digest. */
export async function listStoredImages(store: LayerStore): Promise<ImageRecord[]> {
  return (await store.listImages()).sort((a, b) => (a.manifestDigest < b.manifestDigest ? -1 : 1))
}

function notFound(image: string): CofferError {
  return new CofferError('ERR_IMAGE_NOT_FOUND', `the layer store has no image ${image}`, {
    hint: '`coffer image-service list --store DIR` lists the images the store holds',
  })
}
