/**
 * Property-based fuzzing of every KBS endpoint: random methods, paths, headers and bodies (valid
 * shapes with random fields, and garbage) never get a 5xx, always get the protocol's error body,
 * and the server keeps serving real handshakes afterwards.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'
import { auth, call, rawGet, sampleHandshake } from '../helpers/rcar.js'

const ENDPOINTS = [
  'auth',
  'attest',
  'resource',
  'resources',
  'resource-policy',
  'reference-value',
  'attestation-policy',
  'x',
]

const segment = fc.oneof(
  fc.constantFrom('default', 'key', 'app', '..', '.', '%2e%2e', '%2F', '', 'a'.repeat(200), '\u202e', '%00'),
  fc.stringMatching(/^[A-Za-z0-9_.%-]{0,20}$/),
)

const jsonish = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc
    .record({
      version: fc.oneof(fc.constant('0.4.0'), fc.string()),
      tee: fc.oneof(fc.constantFrom('sample', 'tpm', 'snp', 'tdx'), fc.string()),
      'extra-params': fc.jsonValue(),
    })
    .map((v) => JSON.stringify(v)),
  fc
    .record({
      'init-data': fc.oneof(
        fc.constant(null),
        fc.record({ format: fc.constantFrom('toml', 'json'), body: fc.string() }),
      ),
      'runtime-data': fc.record({ nonce: fc.string(), 'tee-pubkey': fc.jsonValue() }),
      'tee-evidence': fc.record({ primary_evidence: fc.jsonValue(), additional_evidence: fc.string() }),
    })
    .map((v) => JSON.stringify(v)),
  fc.record({ policy: fc.string() }).map((v) => JSON.stringify(v)),
  fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b).toString('latin1')),
)

describe('KBS fuzzing', () => {
  let kbs: TestKbs
  beforeAll(async () => {
    kbs = await startTestKbs()
  })
  afterAll(async () => {
    await kbs?.close()
  })

  it('random requests never get a 5xx and always an error body', async () => {
    const session = await auth(kbs.url)
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
        fc.constantFrom(...ENDPOINTS),
        fc.array(segment, { maxLength: 4 }),
        jsonish,
        fc.constantFrom('application/json', 'application/octet-stream', 'text/plain', ''),
        fc.oneof(
          fc.constant(undefined),
          fc.constant(session.cookie),
          fc.string().map((s) => `kbs-session-id=${s}`),
        ),
        fc.oneof(
          fc.constant(undefined),
          fc.string().map((s) => `Bearer ${s}`),
          fc.constant('Bearer a.b.c'),
        ),
        async (method, endpoint, segments, body, type, cookie, authorization) => {
          const path = `/kbs/v0/${[endpoint, ...segments].join('/')}`
          const headers: Record<string, string> = {}
          if (type) headers['content-type'] = type
          if (cookie) headers.cookie = cookie.replace(/[^\x20-\x7e]/g, '')
          if (authorization) headers.authorization = authorization.replace(/[^\x20-\x7e]/g, '')
          const r =
            method === 'GET'
              ? await rawGet(kbs.url, encodeURI(path).replace(/%25/g, '%'), headers)
              : await call(`${kbs.url}${path}`, { method, headers, body })
          expect(r.status, `${method} ${path} → ${r.status} ${r.text.slice(0, 200)}`).toBeLessThan(500)
          if (r.status !== 200)
            expect(r.body).toEqual({
              type: expect.stringMatching(/^https:\/\/github.com\/confidential-containers\/kbs\/errors\//),
              detail: expect.any(String),
            })
        },
      ),
      { numRuns: 400 },
    )
    // Still serving.
    expect((await sampleHandshake(kbs.url)).token).toMatch(/^ey/)
  }, 120_000)
})
