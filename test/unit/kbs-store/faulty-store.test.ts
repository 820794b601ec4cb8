/**
 * The fault-injecting test store (test/helpers/faulty-store.ts): transparent without rules (it
 * passes the conformance suite over fs), and each rule fails exactly the calls it names.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createFsStore } from '../../../plugins/kbs-store/fs/fs-store.js'
import { faultyStore, INJECTED_FAULT_MESSAGE, type FaultyStore } from '../../helpers/faulty-store.js'
import { expectCode, kbsStoreSuite } from '../../suites/kbs-store.js'

kbsStoreSuite('faulty store without faults (over fs)', async () => {
  const root = await mkdtemp(join(tmpdir(), 'coffer-kbs-faulty-'))
  const store = faultyStore(await createFsStore({ root }))
  return {
    store,
    open: async () => faultyStore(await createFsStore({ root })),
    cleanup: async () => {
      await store.close()
      await rm(root, { recursive: true, force: true })
    },
  }
})

describe('faulty store rules', () => {
  let root: string
  let store: FaultyStore
  const v = Buffer.from('v')
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'coffer-kbs-faulty-'))
    store = faultyStore(await createFsStore({ root }))
  })
  afterEach(async () => {
    await store.close()
    await rm(root, { recursive: true, force: true })
  })

  it('failNext fails the next matching calls only, before they reach the store', async () => {
    store.failNext(2, { method: 'put' })
    await store.get('resource', 'a') // not a put: passes
    const err = await expectCode(store.put('resource', 'a', v), 'ERR_KBS_STORE_UNAVAILABLE')
    expect(err.message).toBe(INJECTED_FAULT_MESSAGE)
    await expectCode(store.put('resource', 'a', v), 'ERR_KBS_STORE_UNAVAILABLE')
    expect(await store.get('resource', 'a')).toBeUndefined()
    await store.put('resource', 'a', v)
    expect(await store.get('resource', 'a')).toEqual(v)
    expect(store.injected).toBe(2)
  })

  it('after: true runs the call, then fails it (the answer is lost, the write is not)', async () => {
    store.failNext(1, { method: 'putIfAbsent', after: true })
    await expectCode(store.putIfAbsent('session', 'n', v), 'ERR_KBS_STORE_UNAVAILABLE')
    expect(await store.get('session', 'n')).toEqual(v)
    expect(await store.putIfAbsent('session', 'n', v)).toBe(false)
  })

  it('failWhen and failAll fail until heal; close never fails; calls are recorded', async () => {
    store.failWhen((c) => c.ns === 'session')
    await store.put('resource', 'r', v)
    await expectCode(store.get('session', 's'), 'ERR_KBS_STORE_UNAVAILABLE')
    await expectCode(store.list('session'), 'ERR_KBS_STORE_UNAVAILABLE')
    store.heal()
    expect(await store.list('session')).toEqual([])
    store.failAll()
    await expectCode(store.get('resource', 'r'), 'ERR_KBS_STORE_UNAVAILABLE')
    await expectCode(store.delete('resource', 'r'), 'ERR_KBS_STORE_UNAVAILABLE')
    store.heal()
    expect(await store.get('resource', 'r')).toEqual(v)
    expect(store.calls.map((c) => c.method)).toEqual(['put', 'get', 'list', 'list', 'get', 'delete', 'get'])
    expect(store.calls[1]).toEqual({ method: 'get', ns: 'session', key: 's' })
  })

  it('a rule filtered by key fails only that key', async () => {
    store.failNext(1, { key: 'bad' })
    await store.put('policy', 'good', v)
    await expectCode(store.put('policy', 'bad', v), 'ERR_KBS_STORE_UNAVAILABLE')
    await store.put('policy', 'bad', v)
    expect(await store.list('policy')).toEqual(['bad', 'good'])
  })
})
