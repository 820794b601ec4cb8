/**
 * The conformance suite every KbsStore runs (STYLE §14, like containerd's `ContentSuite`): every
 * method, expiry, namespace isolation, concurrency (one putIfAbsent winner; no torn reads), the
 * key checks that keep a key inside its namespace, large and binary values, and the closed state.
 *
 * A store's test file calls `kbsStoreSuite(name, makeFixture)`; each test gets a fresh, empty store.
 */
import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { KbsStore, StoreNamespace } from '../../lib/kbs/store.js'
import { CofferError, type CofferErrorCode } from '../../lib/util/errors.js'

export interface KbsStoreFixture {
  /** A fresh, empty store. */
  store: KbsStore
  /** Another instance over the same backing data (another process or replica would see this). */
  open(): Promise<KbsStore>
  /** Closes `store` and removes the backing data. */
  cleanup(): Promise<void>
}

/** Keys every store must refuse with ERR_KBS_STORE_KEY_INVALID, before touching its backing. */
export const INVALID_KEYS: readonly string[] = [
  '',
  '.',
  '..',
  '../x',
  'a/..',
  'a/../b',
  'a/./b',
  '/a',
  'a/',
  'a//b',
  '/',
  '../../etc/passwd',
  'a/b/c/d',
  '.hidden',
  'a/.b',
  '-a',
  'a b',
  ' a',
  'a\\b',
  'a\\x2Fb',
  'a%2Fb',
  '%2e%2e',
  '..%2F..%2Fetc',
  'a\u0000b',
  'a\nb',
  'é',
  'a\u2215b', // DIVISION SLASH, which some normalisers turn into '/'
  'ａ', // fullwidth a
  'x'.repeat(129),
  `a/${'y'.repeat(129)}`,
]

const NAMESPACES: readonly StoreNamespace[] = ['resource', 'policy', 'reference-value', 'session']

export async function expectCode(
  p: Promise<unknown> | (() => unknown),
  code: CofferErrorCode,
): Promise<CofferError> {
  const err = await (typeof p === 'function' ? Promise.resolve().then(p) : p).then(
    () => new Error(`expected ${code}`),
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(CofferError)
  expect((err as CofferError).code).toBe(code)
  return err as CofferError
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const bytes = (s: string) => new TextEncoder().encode(s)

export function kbsStoreSuite(name: string, make: () => Promise<KbsStoreFixture>): void {
  describe(`kbs store conformance: ${name}`, () => {
    let fx: KbsStoreFixture
    let store: KbsStore
    const opened: KbsStore[] = []
    const other = async () => {
      const s = await fx.open()
      opened.push(s)
      return s
    }

    beforeEach(async () => {
      fx = await make()
      store = fx.store
    })
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close()
      await fx.cleanup()
    })

    it('get of an absent key is undefined; put then get returns the bytes; put replaces', async () => {
      expect(await store.get('resource', 'default/key/one')).toBeUndefined()
      await store.put('resource', 'default/key/one', bytes('first'))
      expect(Buffer.from((await store.get('resource', 'default/key/one'))!).toString()).toBe('first')
      await store.put('resource', 'default/key/one', bytes('second, longer than the first'))
      expect(Buffer.from((await store.get('resource', 'default/key/one'))!).toString()).toBe(
        'second, longer than the first',
      )
    })

    it('keeps binary, empty and large (≥ 1 MiB) values byte for byte', async () => {
      const all = Uint8Array.from({ length: 512 }, (_, i) => i % 256)
      const large = randomBytes(1024 * 1024 + 4321)
      await store.put('resource', 'r/bin/all', all)
      await store.put('resource', 'r/bin/empty', new Uint8Array(0))
      await store.put('resource', 'r/bin/large', large)
      const got = await store.get('resource', 'r/bin/all')
      expect(got).toBeInstanceOf(Uint8Array)
      expect(Buffer.from(got!).equals(Buffer.from(all))).toBe(true)
      expect((await store.get('resource', 'r/bin/empty'))?.byteLength).toBe(0)
      expect(Buffer.from((await store.get('resource', 'r/bin/large'))!).equals(large)).toBe(true)
    })

    it('a value handed to put or returned by get is a copy the caller may change', async () => {
      const v = bytes('original')
      await store.put('policy', 'p', v)
      v.fill(0)
      const got = (await store.get('policy', 'p'))!
      expect(Buffer.from(got).toString()).toBe('original')
      got.fill(0)
      expect(Buffer.from((await store.get('policy', 'p'))!).toString()).toBe('original')
    })

    it('delete is true once, then false; the value is gone', async () => {
      expect(await store.delete('resource', 'a/b/c')).toBe(false)
      await store.put('resource', 'a/b/c', bytes('v'))
      expect(await store.delete('resource', 'a/b/c')).toBe(true)
      expect(await store.delete('resource', 'a/b/c')).toBe(false)
      expect(await store.get('resource', 'a/b/c')).toBeUndefined()
      expect(await store.list('resource')).toEqual([])
    })

    it('list returns unexpired keys of every depth, sorted, and nothing else', async () => {
      expect(await store.list('resource')).toEqual([])
      const keys = ['zeta', 'a/b/c', 'a/b', 'a', 'A_1/x-y/z.z', 'a/b/d', 'b.c', '0']
      for (const k of keys) await store.put('resource', k, bytes(k))
      await store.put('resource', 'gone/soon', bytes('x'), { expiresAt: Date.now() - 1 })
      await store.put('resource', 'deleted', bytes('x'))
      await store.delete('resource', 'deleted')
      expect(await store.list('resource')).toEqual([...keys].sort())
    })

    it('namespaces are isolated: same key, separate values, deletes and lists', async () => {
      for (const ns of NAMESPACES) await store.put(ns, 'same/key', bytes(ns))
      for (const ns of NAMESPACES) expect(Buffer.from((await store.get(ns, 'same/key'))!).toString()).toBe(ns)
      expect(await store.delete('session', 'same/key')).toBe(true)
      expect(await store.get('session', 'same/key')).toBeUndefined()
      expect(Buffer.from((await store.get('resource', 'same/key'))!).toString()).toBe('resource')
      await store.put('policy', 'only-policy', bytes('x'))
      expect(await store.list('policy')).toEqual(['only-policy', 'same/key'])
      expect(await store.list('reference-value')).toEqual(['same/key'])
      expect(await store.list('session')).toEqual([])
    })

    it('an entry past its expiresAt is invisible to get, list and delete', async () => {
      await store.put('session', 'expired', bytes('old'), { expiresAt: Date.now() - 1000 })
      expect(await store.get('session', 'expired')).toBeUndefined()
      expect(await store.list('session')).toEqual([])
      expect(await store.delete('session', 'expired')).toBe(false)
    })

    it('an entry expires at its time, not before', async () => {
      await store.put('session', 's1', bytes('live'), { expiresAt: Date.now() + 600 })
      expect(Buffer.from((await store.get('session', 's1'))!).toString()).toBe('live')
      expect(await store.list('session')).toEqual(['s1'])
      await sleep(800)
      expect(await store.get('session', 's1')).toBeUndefined()
      expect(await store.list('session')).toEqual([])
    })

    it('put without expiresAt over an expiring entry makes it permanent', async () => {
      await store.put('session', 's', bytes('a'), { expiresAt: Date.now() + 300 })
      await store.put('session', 's', bytes('b'))
      await sleep(400)
      expect(Buffer.from((await store.get('session', 's'))!).toString()).toBe('b')
    })

    it('putIfAbsent inserts when absent or expired, and never replaces a live entry', async () => {
      expect(await store.putIfAbsent('session', 'nonce', bytes('first'))).toBe(true)
      expect(await store.putIfAbsent('session', 'nonce', bytes('second'))).toBe(false)
      expect(Buffer.from((await store.get('session', 'nonce'))!).toString()).toBe('first')
      await store.put('session', 'old', bytes('stale'), { expiresAt: Date.now() - 1 })
      expect(
        await store.putIfAbsent('session', 'old', bytes('fresh'), { expiresAt: Date.now() + 60_000 }),
      ).toBe(true)
      expect(Buffer.from((await store.get('session', 'old'))!).toString()).toBe('fresh')
      expect(await store.list('session')).toEqual(['nonce', 'old'])
    })

    it('concurrent putIfAbsent on one key across instances: exactly one wins, and its value stays', async () => {
      const stores = [store, await other(), await other()]
      for (const expired of [false, true]) {
        const key = expired ? 'race/expired' : 'race/absent'
        if (expired) await store.put('session', key, bytes('stale'), { expiresAt: Date.now() - 1 })
        const results = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            stores[i % stores.length]!.putIfAbsent('session', key, bytes(`v${i}`)),
          ),
        )
        expect(results.filter(Boolean)).toHaveLength(1)
        const winner = results.indexOf(true)
        for (const s of stores)
          expect(Buffer.from((await s.get('session', key))!).toString()).toBe(`v${winner}`)
      }
    })

    it('concurrent put and get never show a torn value', async () => {
      const a = Buffer.alloc(256 * 1024, 0xaa)
      const b = Buffer.alloc(300 * 1024, 0xbb)
      const reader = await other()
      await store.put('resource', 'torn/test/v', a)
      let stop = false
      const writes = (async () => {
        for (let i = 0; i < 20; i++) await store.put('resource', 'torn/test/v', i % 2 ? a : b)
        stop = true
      })()
      let reads = 0
      while (!stop) {
        const got = Buffer.from((await reader.get('resource', 'torn/test/v'))!)
        expect(got.equals(a) || got.equals(b)).toBe(true)
        reads++
      }
      await writes
      expect(reads).toBeGreaterThan(0)
    })

    it("one instance sees another's writes and deletes", async () => {
      const two = await other()
      await store.put('resource', 'shared/k/v', bytes('from one'))
      expect(Buffer.from((await two.get('resource', 'shared/k/v'))!).toString()).toBe('from one')
      expect(await two.list('resource')).toEqual(['shared/k/v'])
      expect(await two.delete('resource', 'shared/k/v')).toBe(true)
      expect(await store.get('resource', 'shared/k/v')).toBeUndefined()
    })

    it('invalid keys are ERR_KBS_STORE_KEY_INVALID for every method', async () => {
      for (const key of INVALID_KEYS) {
        await expectCode(store.get('resource', key), 'ERR_KBS_STORE_KEY_INVALID')
        await expectCode(store.put('resource', key, bytes('x')), 'ERR_KBS_STORE_KEY_INVALID')
        await expectCode(store.putIfAbsent('resource', key, bytes('x')), 'ERR_KBS_STORE_KEY_INVALID')
        await expectCode(store.delete('resource', key), 'ERR_KBS_STORE_KEY_INVALID')
      }
      expect(await store.list('resource')).toEqual([])
    })

    it('an unknown namespace is ERR_KBS_STORE_KEY_INVALID', async () => {
      for (const ns of [
        '',
        'resources',
        '../resource',
        'resource/..',
        'Session',
      ] as unknown as StoreNamespace[]) {
        await expectCode(store.get(ns, 'k'), 'ERR_KBS_STORE_KEY_INVALID')
        await expectCode(store.put(ns, 'k', bytes('x')), 'ERR_KBS_STORE_KEY_INVALID')
        await expectCode(store.list(ns), 'ERR_KBS_STORE_KEY_INVALID')
      }
    })

    it('the longest valid key (3 × 128 characters) works', async () => {
      const key = ['a', 'b', 'c'].map((c) => c.repeat(128)).join('/')
      await store.put('resource', key, bytes('long'))
      expect(Buffer.from((await store.get('resource', key))!).toString()).toBe('long')
      expect(await store.list('resource')).toEqual([key])
      expect(await store.delete('resource', key)).toBe(true)
    })

    it('a value that is not bytes, or a bad expiresAt, is ERR_INVALID_ARGUMENT', async () => {
      await expectCode(store.put('resource', 'k', 'text' as unknown as Uint8Array), 'ERR_INVALID_ARGUMENT')
      await expectCode(
        store.put('resource', 'k', bytes('x'), { expiresAt: Number.NaN }),
        'ERR_INVALID_ARGUMENT',
      )
      await expectCode(
        store.putIfAbsent('resource', 'k', bytes('x'), { expiresAt: 1.5 }),
        'ERR_INVALID_ARGUMENT',
      )
      expect(await store.get('resource', 'k')).toBeUndefined()
    })

    it('close is idempotent, and a closed store is ERR_KBS_STORE_UNAVAILABLE', async () => {
      const s = await fx.open()
      await s.put('policy', 'before-close', bytes('x'))
      await s.close()
      await s.close()
      await expectCode(s.get('policy', 'before-close'), 'ERR_KBS_STORE_UNAVAILABLE')
      await expectCode(s.put('policy', 'k', bytes('x')), 'ERR_KBS_STORE_UNAVAILABLE')
      await expectCode(s.list('policy'), 'ERR_KBS_STORE_UNAVAILABLE')
      expect(Buffer.from((await store.get('policy', 'before-close'))!).toString()).toBe('x')
    })
  })
}
