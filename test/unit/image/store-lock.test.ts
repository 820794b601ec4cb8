/**
 * The layer store's lock: gc waits for every pull holding the store, a pull waits for a running
 * gc, a waiting gc holds new pulls off, and lock files of dead processes are ignored.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openLayerStore } from '../../../lib/image/layer-store/index.js'
import { lockStoreExclusive, lockStoreShared } from '../../../lib/image/layer-store/store-lock.js'

let root: string
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'coffer-lock-'))
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

/** Resolves to 'pending' if `p` has not settled within `ms`. */
const within = <T>(p: Promise<T>, ms = 400): Promise<T | 'pending'> =>
  Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))])

describe('store lock', () => {
  it('gc waits for the pulls holding the store, then runs', async () => {
    const store = await openLayerStore(root)
    const a = await store.hold()
    const b = await store.hold()
    const waits: number[] = []
    const gc = store.gc({ onWait: (n) => waits.push(n) })
    expect(await within(gc)).toBe('pending')
    expect(waits).toEqual([2])
    await a.release()
    expect(await within(gc)).toBe('pending')
    await b.release()
    expect(await gc).toEqual([])
    expect(await readdir(join(root, 'locks', 'exclusive'))).toEqual([])
  })

  it('a pull waits for a running gc, and a waiting gc holds new pulls off', async () => {
    const pull = await lockStoreShared(root)
    const gc = lockStoreExclusive(root)
    expect(await within(gc)).toBe('pending')
    // gc is waiting: a new pull queues behind it rather than starving it.
    const later = lockStoreShared(root)
    expect(await within(later)).toBe('pending')
    await pull.release()
    const gcLock = await gc
    expect(await within(later)).toBe('pending')
    await gcLock.release()
    await (await later).release()
  })

  it('two gcs run one after the other', async () => {
    const first = await lockStoreExclusive(root)
    const second = lockStoreExclusive(root)
    expect(await within(second)).toBe('pending')
    await first.release()
    await (await second).release()
  })

  it('ignores and removes lock files of processes that are gone', async () => {
    await mkdir(join(root, 'locks', 'shared'), { recursive: true })
    await mkdir(join(root, 'locks', 'exclusive'), { recursive: true })
    // pid 2^22 + 1 is above Linux's pid_max: no such process; our own pid without a live lock: a predecessor's.
    await writeFile(join(root, 'locks', 'shared', '4194305-dead'), '')
    await writeFile(join(root, 'locks', 'exclusive', `${process.pid}-stale`), '')
    const gc = await within(lockStoreExclusive(root))
    expect(gc).not.toBe('pending')
    if (gc !== 'pending') await gc.release()
    expect(await readdir(join(root, 'locks', 'shared'))).toEqual([])
    expect(await readdir(join(root, 'locks', 'exclusive'))).toEqual([])
  })

  it('waiting ends with ERR_CANCELED on the signal, leaving no lock file', async () => {
    const pull = await lockStoreShared(root)
    const controller = new AbortController()
    const gc = lockStoreExclusive(root, { signal: controller.signal })
    setTimeout(() => controller.abort(), 150)
    await expect(gc).rejects.toMatchObject({ code: 'ERR_CANCELED' })
    expect(await readdir(join(root, 'locks', 'exclusive'))).toEqual([])
    await pull.release()
  })
})
