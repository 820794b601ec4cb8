import { lstat, mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { createHash } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openLayerStore, type LayerStore } from '../../../lib/image/layer-store/index.js'
import { buildRootfs, materializeRootfs } from '../../../lib/image/rootfs.js'
import { inOrder } from '../../../lib/util/concurrency.js'
import { snapshotTree } from '../../helpers/layer-image.js'
import type { StoredLayer } from '../../../lib/image/layer-store/index.js'
import { tarBuffer, type TarEntry } from '../../helpers/tar-builder.js'

let work: string
let store: LayerStore

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-rootfs-'))
  store = await openLayerStore(join(work, 'store'))
})
afterEach(async () => {
  await rm(work, { recursive: true, force: true })
})

async function add(entries: TarEntry[]): Promise<string> {
  const tar = await tarBuffer(entries)
  const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`
  await store.unpack(diffId, Readable.from([tar]))
  return diffId
}

describe('buildRootfs', () => {
  it('materializes hardlinks into lower layers, whiteouts and opaque dirs', async () => {
    const l1 = await add([
      { name: 'bin/busybox', content: 'bb' },
      { name: 'old/x', content: 'x' },
      { name: 'o/lower', content: 'l' },
    ])
    const l2 = await add([
      { name: 'bin/sh', type: 'link', target: 'bin/busybox' },
      { name: '.wh.old', content: '' },
      { name: 'o/.wh..wh..opq', content: '' },
      { name: 'o/upper', content: 'u' },
    ])
    expect((await store.get(l2))?.meta.externalLinks).toEqual([{ path: 'bin/sh', target: 'bin/busybox' }])
    const r = await buildRootfs(store, [l1, l2], join(work, 'c1'))
    try {
      expect(r.kind).toBe('materialized')
      expect(r.fallbackReason).toMatch(/hardlinks into a lower layer|not root/)
      expect((await lstat(join(r.path, 'bin/sh'))).ino).toBe((await lstat(join(r.path, 'bin/busybox'))).ino)
      expect((await readdir(r.path)).sort()).toEqual(['bin', 'o'])
      expect(await readdir(join(r.path, 'o'))).toEqual(['upper'])
      expect(await readFile(join(r.path, 'o/upper'), 'utf8')).toBe('u')
    } finally {
      await r.release()
    }
    await expect(lstat(join(work, 'c1'))).rejects.toThrow(/ENOENT/)
  })

  it('fails with ERR_IMAGE_HARDLINK_INVALID when a lower-layer link target is missing', async () => {
    const l1 = await add([{ name: 'a', content: 'a' }])
    const l2 = await add([{ name: 'h', type: 'link', target: 'nope' }])
    await expect(
      buildRootfs(store, [l1, l2], join(work, 'c2'), { mode: 'materialize' }),
    ).rejects.toMatchObject({
      code: 'ERR_IMAGE_HARDLINK_INVALID',
    })
    await expect(lstat(join(work, 'c2'))).rejects.toThrow(/ENOENT/)
  })

  it('fails with ERR_IMAGE_LAYER_NOT_FOUND for a layer that is not stored', async () => {
    await expect(buildRootfs(store, [`sha256:${'0'.repeat(64)}`], join(work, 'c3'))).rejects.toMatchObject({
      code: 'ERR_IMAGE_LAYER_NOT_FOUND',
    })
  })
})

describe('materializeRootfs (layers applied as they arrive)', () => {
  const layers = (): TarEntry[][] => [
    [
      { name: 'etc/', type: 'dir', mode: 0o755 },
      { name: 'etc/a', content: 'a1' },
      { name: 'bin/busybox', content: 'bb', mode: 0o755 },
      { name: 'o/lower', content: 'l' },
    ],
    [
      { name: 'etc/a', content: 'a2' },
      { name: 'bin/sh', type: 'link', target: 'bin/busybox' },
      { name: 'o/.wh..wh..opq', content: '' },
      { name: 'o/upper', content: 'u' },
    ],
    [
      { name: 'etc/.wh.a', content: '' },
      { name: 'etc/b', type: 'symlink', target: '../bin/sh' },
    ],
  ]

  it('gives the tree buildRootfs materializes, whatever order the layers are stored in', async () => {
    const ids: string[] = []
    for (const l of layers()) ids.push(await add(l))
    const reference = await buildRootfs(store, ids, join(work, 'ref'), { mode: 'materialize' })
    // Stored top first, with delays: the tree is still built bottom up.
    const arrivals = inOrder<StoredLayer>(ids.length)
    const building = materializeRootfs(join(work, 'inc'), arrivals, 'materialize requested')
    for (const i of [2, 0, 1]) {
      await new Promise((r) => setTimeout(r, 10))
      arrivals.put(i, (await store.get(ids[i]!))!)
    }
    const r = await building
    try {
      expect(r.kind).toBe('materialized')
      expect(await snapshotTree(r.path)).toEqual(await snapshotTree(reference.path))
      expect((await readdir(join(r.path, 'etc'))).sort()).toEqual(['b'])
    } finally {
      await r.release()
      await reference.release()
    }
  })

  it('removes the partial tree when a layer fails to arrive', async () => {
    const id = await add(layers()[0]!)
    const arrivals = inOrder<StoredLayer>(2)
    const building = materializeRootfs(join(work, 'fail'), arrivals, 'materialize requested')
    arrivals.put(0, (await store.get(id))!)
    await new Promise((r) => setTimeout(r, 20))
    arrivals.fail(new Error('layer 1 failed'))
    await expect(building).rejects.toThrow('layer 1 failed')
    await expect(lstat(join(work, 'fail'))).rejects.toThrow(/ENOENT/)
  })
})
