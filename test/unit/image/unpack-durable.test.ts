/**
 * `durable: true` (the layer store's mode): the same tree and result as without, every file and
 * directory fsynced before unpackLayer returns (or, past MAX_FILE_SYNCS files, one syncfs), and
 * no descriptor left open, also when the layer fails halfway.
 */
import { mkdir, mkdtemp, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { MAX_FILE_SYNCS } from '../../../lib/image/unpack/durability.js'
import { unpackLayer } from '../../../lib/image/unpack/index.js'
import { snapshotTree } from '../../helpers/layer-image.js'
import { tarBuffer, tarStream, type TarEntry } from '../../helpers/tar-builder.js'

let base: string
beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'coffer-unpack-durable-'))
})
afterEach(async () => {
  vi.restoreAllMocks()
  await rm(base, { recursive: true, force: true })
})

const entries: TarEntry[] = [
  { name: 'a/', type: 'dir', mode: 0o750 },
  { name: 'a/b/c/file', content: 'x'.repeat(3000) },
  { name: 'a/big', type: 'big', size: 3 << 20 },
  { name: 'a/link', type: 'symlink', target: 'b/c/file' },
  { name: 'a/hard', type: 'link', target: 'a/b/c/file' },
  { name: 'top', content: 'top' },
]

const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length

/** Counts FileHandle.sync calls. FileHandle is not exported as a class value; spy on the prototype of one. */
async function spyOnFileSync() {
  const probe = await open(join(base, 'probe'), 'w')
  const proto = Object.getPrototypeOf(probe) as FileHandle
  await probe.close()
  return vi.spyOn(proto, 'sync')
}

async function dir(name: string): Promise<string> {
  const d = join(base, name)
  await mkdir(d)
  return d
}

describe('unpackLayer durable', () => {
  it('gives the same tree and result, after fsyncing every file and directory', async () => {
    const plain = await dir('plain')
    const durable = await dir('durable')
    const expected = await unpackLayer(tarStream(entries), plain, { whiteouts: 'record' })
    const sync = await spyOnFileSync()
    const before = await openFds()
    const result = await unpackLayer(tarStream(entries), durable, { whiteouts: 'record', durable: true })
    expect(result).toEqual(expected)
    expect(await snapshotTree(durable)).toEqual(await snapshotTree(plain))
    // 3 regular files (the hardlink shares an inode) + the directories '', a, a/b, a/b/c.
    expect(sync.mock.calls.length).toBe(3 + 4)
    expect(await openFds()).toBe(before)
  })

  it('a layer of many files: the first ones fsynced one by one, then one syncfs for the rest', async () => {
    const many: TarEntry[] = Array.from({ length: MAX_FILE_SYNCS + 40 }, (_, i) => ({
      name: `d${i % 7}/f${i}`,
      content: `${i}`,
    }))
    const plain = await dir('plain-many')
    const durable = await dir('durable-many')
    const expected = await unpackLayer(tarStream(many), plain, { whiteouts: 'record' })
    const sync = await spyOnFileSync()
    const before = await openFds()
    const result = await unpackLayer(tarStream(many), durable, { whiteouts: 'record', durable: true })
    expect(result).toEqual(expected)
    expect(await snapshotTree(durable)).toEqual(await snapshotTree(plain))
    expect(sync.mock.calls.length).toBe(MAX_FILE_SYNCS) // no directory fsyncs: syncfs covers them
    expect(await openFds()).toBe(before)
  })

  it('closes every file it was syncing when the layer fails halfway', async () => {
    const tar = await tarBuffer(entries)
    const truncated = Readable.from([tar.subarray(0, tar.length - 2 * 1024 * 1024)])
    const before = await openFds()
    await expect(
      unpackLayer(truncated, await dir('cut'), { whiteouts: 'record', durable: true }),
    ).rejects.toMatchObject({ code: 'ERR_IMAGE_TAR_INVALID' })
    expect(await openFds()).toBe(before)
  })

  it('starts the writeback of a big file while writing it (fdatasync every 8 MiB), then still fsyncs it, for both write modes', async () => {
    const big: TarEntry[] = [{ name: 'huge', type: 'big', size: 40 << 20 }]
    const probe = await open(join(base, 'probe2'), 'w')
    const proto = Object.getPrototypeOf(probe) as FileHandle
    await probe.close()
    const datasync = vi.spyOn(proto, 'datasync')
    const sync = vi.spyOn(proto, 'sync')
    for (const blockingWrites of [false, true]) {
      datasync.mockClear()
      sync.mockClear()
      const d = await dir(`huge-${blockingWrites}`)
      const before = await openFds()
      await unpackLayer(tarStream(big), d, { whiteouts: 'record', durable: true, blockingWrites })
      expect(datasync.mock.calls.length).toBeGreaterThanOrEqual(1)
      expect(datasync.mock.calls.length).toBeLessThanOrEqual(5)
      expect(sync).toHaveBeenCalled()
      expect((await stat(join(d, 'huge'))).size).toBe(40 << 20)
      expect(await openFds()).toBe(before)
      // Not durable: no early writeback either.
      datasync.mockClear()
      await unpackLayer(tarStream(big), await dir(`huge-plain-${blockingWrites}`), {
        whiteouts: 'record',
        blockingWrites,
      })
      expect(datasync).not.toHaveBeenCalled()
    }
  })
})
