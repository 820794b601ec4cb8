import { lstat, mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { createHash } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openLayerStore, type LayerStore } from '../../../lib/image/layer-store/index.js'
import { buildRootfs } from '../../../lib/image/rootfs.js'
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
