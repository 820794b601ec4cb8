/** Image records by name: pulls add their reference, remove by name or digest, gc then frees the layers. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openLayerStore, type LayerStore } from '../../../lib/image/layer-store/index.js'
import { listStoredImages, removeStoredImage } from '../../../lib/image/stored-images.js'

const D1 = `sha256:${'1'.repeat(64)}`
const D2 = `sha256:${'2'.repeat(64)}`
const L = `sha256:${'a'.repeat(64)}`

let root: string
let store: LayerStore
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'coffer-images-'))
  store = await openLayerStore(root)
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

describe('stored images', () => {
  it('a pull adds its reference to the record; remove by name drops it, the record with its last name', async () => {
    await store.putImage({ manifestDigest: D1, diffIds: [L], references: ['docker://r.io/app:1'] })
    await store.putImage({ manifestDigest: D1, diffIds: [L], references: ['docker://r.io/app:latest'] })
    expect(await listStoredImages(store)).toEqual([
      { manifestDigest: D1, diffIds: [L], references: ['docker://r.io/app:1', 'docker://r.io/app:latest'] },
    ])
    // The CRI form and the coffer form name the same reference.
    expect(await removeStoredImage(store, 'r.io/app:1')).toEqual([])
    expect((await store.getImage(D1))?.references).toEqual(['docker://r.io/app:latest'])
    expect(await removeStoredImage(store, 'docker://r.io/app:latest')).toEqual([D1])
    expect(await store.getImage(D1)).toBeUndefined()
  })

  it('remove by digest drops the record whatever its names; unknown images are ERR_IMAGE_NOT_FOUND', async () => {
    await store.putImage({ manifestDigest: D2, diffIds: [L], references: ['docker://r.io/b:1'] })
    await expect(removeStoredImage(store, D1)).rejects.toMatchObject({ code: 'ERR_IMAGE_NOT_FOUND' })
    await expect(removeStoredImage(store, 'r.io/never:1')).rejects.toMatchObject({
      code: 'ERR_IMAGE_NOT_FOUND',
    })
    expect(await removeStoredImage(store, D2)).toEqual([D2])
    expect(await listStoredImages(store)).toEqual([])
  })

  it('records from before references existed still load, and are removable by digest', async () => {
    await store.putImage({ manifestDigest: D1, diffIds: [L] })
    expect(await listStoredImages(store)).toEqual([{ manifestDigest: D1, diffIds: [L] }])
    expect(await removeStoredImage(store, D1)).toEqual([D1])
  })
})
