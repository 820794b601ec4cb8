/**
 * The KBS client's resilience: one handshake serves many requests, a KBS restart (tokens no longer
 * valid) is healed by re-attesting, and a transient 503 is retried.
 */
import { describe, expect, it } from 'vitest'
import { KbsClient } from '../../lib/kbs/client.js'
import { createMemoryStore } from '../../lib/kbs/memory-store.js'
import { createSampleAttester } from '../../plugins/attester/sample/index.js'
import { faultyStore } from '../helpers/faulty-store.js'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'

async function seed(kbs: TestKbs, value: string): Promise<void> {
  await kbs.putResources({ 'default/key/c': value })
  await kbs.allowResources(['*'], 'tee == "sample"')
}

const count = (metrics: string, route: string): number =>
  Number(
    new RegExp(`coffer_kbs_http_requests_total\\{route="${route}",status="200"\\} (\\d+)`).exec(
      metrics,
    )?.[1] ?? 0,
  )

describe('KBS client', () => {
  it('attests once for many resource requests (the token is cached)', async () => {
    const kbs = await startTestKbs()
    const client = new KbsClient({ url: kbs.url, attester: createSampleAttester(() => {}) })
    try {
      await seed(kbs, 'v')
      await Promise.all(Array.from({ length: 8 }, () => client.getResource('kbs:///default/key/c')))
      for (let i = 0; i < 4; i++) await client.getResource('kbs:///default/key/c')
      const metrics = await (await fetch(`${kbs.url}/metrics`)).text()
      expect(count(metrics, 'POST auth')).toBe(1)
      expect(count(metrics, 'POST attest')).toBe(1)
      expect(count(metrics, 'GET resource')).toBe(12)
    } finally {
      await client.close()
      await kbs.close()
    }
  })

  it('re-attests when the KBS no longer accepts its token (restart with a new signing key)', async () => {
    const store = createMemoryStore()
    const first = await startTestKbs({ store })
    const port = new URL(first.url).port
    await seed(first, 'before')
    const client = new KbsClient({ url: first.url, attester: createSampleAttester(() => {}) })
    try {
      expect(Buffer.from(await client.getResource('kbs:///default/key/c')).toString()).toBe('before')
      await first.close()
      const second = await startTestKbs({ store, config: { http: { port: Number(port) } } })
      try {
        await seed(second, 'after')
        expect(Buffer.from(await client.getResource('kbs:///default/key/c')).toString()).toBe('after')
      } finally {
        await second.close()
      }
    } finally {
      await client.close()
    }
  })

  it('retries a transient 503 (store hiccup) and succeeds', async () => {
    const store = faultyStore(createMemoryStore())
    const kbs = await startTestKbs({ store })
    const client = new KbsClient({
      url: kbs.url,
      attester: createSampleAttester(() => {}),
      retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50, maxRetryAfterMs: 50 },
    })
    try {
      await seed(kbs, 'v')
      await client.token()
      store.failNext(1, { method: 'get', ns: 'resource' })
      expect(Buffer.from(await client.getResource('kbs:///default/key/c')).toString()).toBe('v')
      expect(store.injected).toBe(1)
    } finally {
      await client.close()
      await kbs.close()
    }
  })
})
