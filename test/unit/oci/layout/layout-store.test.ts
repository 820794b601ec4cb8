import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { buildSampleImage } from '../../../../cli/demo/sample-image.js'
import { digestOf } from '../../../../lib/oci/digest.js'
import { openLayout, REF_NAME_ANNOTATION } from '../../../../lib/oci/layout/layout-store.js'
import { MediaType } from '../../../../lib/oci/media-types.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-layout-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('OCI layout store', () => {
  it('creates a layout in a missing or empty directory, and refuses a foreign non-empty one', async () => {
    await openLayout(join(dir, 'new'), { create: true })
    expect(JSON.parse(await readFile(join(dir, 'new', 'oci-layout'), 'utf8'))).toEqual({
      imageLayoutVersion: '1.0.0',
    })
    expect(JSON.parse(await readFile(join(dir, 'new', 'index.json'), 'utf8'))).toMatchObject({
      schemaVersion: 2,
      manifests: [],
    })
    await mkdir(join(dir, 'foreign'))
    await writeFile(join(dir, 'foreign', 'precious.txt'), 'keep me')
    await expect(openLayout(join(dir, 'foreign'), { create: true })).rejects.toMatchObject({
      code: 'ERR_OCI_LAYOUT_INVALID',
    })
    expect(await readdir(join(dir, 'foreign'))).toEqual(['precious.txt'])
    await expect(openLayout(join(dir, 'absent'))).rejects.toMatchObject({ code: 'ERR_OCI_LAYOUT_NOT_FOUND' })
  })

  it('refuses a malformed oci-layout or index.json with a clear error', async () => {
    const store = await openLayout(join(dir, 'l'), { create: true })
    await writeFile(join(dir, 'l', 'index.json'), '{"schemaVersion":2,"manifests":[{"digest":"nope"}]}')
    await expect(store.readIndex()).rejects.toMatchObject({ code: 'ERR_OCI_LAYOUT_INVALID' })
    await writeFile(join(dir, 'l', 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}')
    await expect(openLayout(join(dir, 'l'))).rejects.toMatchObject({ code: 'ERR_OCI_LAYOUT_INVALID' })
  })

  it('writes a blob only when digest and size match, leaving no temp file otherwise', async () => {
    const store = await openLayout(dir, { create: true })
    const data = Buffer.from('hello blob')
    const digest = digestOf(data)
    await expect(
      store.writeBlob({ digest, size: data.length }, Readable.from([Buffer.from('hello BLOB')])),
    ).rejects.toMatchObject({ code: 'ERR_OCI_DIGEST_MISMATCH' })
    await expect(store.writeBlob({ digest, size: 3 }, Readable.from([data]))).rejects.toMatchObject({
      code: 'ERR_OCI_SIZE_MISMATCH',
    })
    await expect(store.writeBlob({ digest, size: 99 }, Readable.from([data]))).rejects.toMatchObject({
      code: 'ERR_OCI_SIZE_MISMATCH',
    })
    expect(await readdir(join(dir, 'blobs', 'sha256'))).toEqual([])
    await store.writeBlob({ digest, size: data.length }, Readable.from([data]))
    expect(await store.readBlob({ digest, size: data.length }, 100)).toEqual(data)
    // A second writer of the same content is harmless.
    await store.writeBlob({ digest, size: data.length }, Readable.from([data]))
    expect(await readdir(join(dir, 'blobs', 'sha256'))).toEqual([digest.slice(7)])
  })

  it('detects a blob that was changed on disk', async () => {
    const store = await openLayout(dir, { create: true })
    const data = Buffer.from('{"a":1}')
    const digest = await store.writeBlobBytes(data)
    await writeFile(store.blobPath(digest), '{"a":2}')
    await expect(store.readBlob({ digest, size: data.length }, 100)).rejects.toMatchObject({
      code: 'ERR_OCI_DIGEST_MISMATCH',
    })
  })

  it('moves a tag, keeps other tags, and resolves by tag or as the only image', async () => {
    const a = await buildSampleImage(dir, 'a', [[{ path: 'a', content: 'a' }]])
    const store = await openLayout(dir)
    expect(await store.resolve(undefined)).toMatchObject({ digest: a.digest })
    const b = await buildSampleImage(dir, 'b', [[{ path: 'b', content: 'b' }]])
    await expect(store.resolve(undefined)).rejects.toMatchObject({ code: 'ERR_OCI_TAG_AMBIGUOUS' })
    await store.setTag(b, 'a') // move tag a to image b
    expect((await store.resolve('a')).digest).toBe(b.digest)
    expect((await store.resolve('b')).digest).toBe(b.digest)
    expect((await store.readIndex()).manifests.map((m) => m.annotations?.[REF_NAME_ANNOTATION])).toEqual([
      'b',
      'a',
    ])
    await expect(store.resolve('c')).rejects.toThrow(/tags: b, a/)
    await store.removeTag('a')
    await expect(store.removeTag('a')).rejects.toMatchObject({ code: 'ERR_OCI_TAG_NOT_FOUND' })
  })

  it('loses no tag when many writers tag at once', async () => {
    const img = await buildSampleImage(dir, 'base')
    const stores = await Promise.all(Array.from({ length: 20 }, () => openLayout(dir)))
    await Promise.all(stores.map((s, i) => s.setTag(img, `t${i}`)))
    const tags = (await stores[0]!.readIndex()).manifests
      .map((m) => m.annotations?.[REF_NAME_ANNOTATION])
      .sort()
    expect(tags).toEqual(['base', ...Array.from({ length: 20 }, (_, i) => `t${i}`)].sort())
  })

  it('gc removes what no tag reaches, keeps what one does (through indexes), and drops stale temp files', async () => {
    const keep = await buildSampleImage(dir, 'keep', [[{ path: 'k', content: 'keep' }]])
    const drop = await buildSampleImage(dir, 'drop', [[{ path: 'd', content: 'drop' }]])
    const store = await openLayout(dir)
    const indexBytes = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [keep] }),
    )
    const index = {
      mediaType: MediaType.OciIndex,
      digest: await store.writeBlobBytes(indexBytes),
      size: indexBytes.length,
    }
    await store.setTag(index, 'keep') // the only route to `keep` is now through the index
    await store.removeTag('drop')
    const stale = join(dir, 'blobs', 'sha256', '.tmp-stale')
    await writeFile(stale, 'half written')
    await utimes(stale, new Date(0), new Date(0))
    const fresh = join(dir, 'blobs', 'sha256', '.tmp-fresh')
    await writeFile(fresh, 'being written')

    const before = await readdir(join(dir, 'blobs', 'sha256'))
    const result = await store.gc()
    const after = await readdir(join(dir, 'blobs', 'sha256'))
    expect(result.removedBlobs).toBe(3) // drop's manifest, config and layer
    expect(after).not.toContain(drop.digest.slice(7))
    expect(after).not.toContain('.tmp-stale')
    expect(after).toContain('.tmp-fresh')
    expect(after).toContain(keep.digest.slice(7))
    expect(after).toContain(index.digest.slice(7))
    expect(before.length - after.length).toBe(4)
    const doc = await store.readManifest(keep)
    expect(doc.kind).toBe('manifest')
  })
})
