/**
 * The KBS against the protocol and against abuse: wire shapes field by field (kbs-types 0.4.0),
 * and every refusal the issue lists, each with the status and error body trustee's guest expects
 * and nothing leaked.
 */
import { generateKeyPairSync } from 'node:crypto'
import { flattenedDecrypt, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { signAdminToken } from '../../lib/kbs/admin-auth.js'
import { POLICY_VERSION } from '../../lib/kbs/resource-policy.js'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'
import {
  attest,
  attestationBody,
  auth,
  call,
  rawGet,
  sampleEvidence,
  sampleHandshake,
  sessionKey,
} from '../helpers/rcar.js'

const SECRET = Buffer.from('this resource is a secret of 32B')
const ERROR_PREFIX = 'https://github.com/confidential-containers/kbs/errors/'

describe('KBS protocol', () => {
  let kbs: TestKbs
  beforeAll(async () => {
    kbs = await startTestKbs({ config: { attestation: { allow_sample: true, session_timeout_s: 5 } } })
    const h = await kbs.adminHeaders()
    await call(`${kbs.url}/kbs/v0/resource/default/key/app`, {
      method: 'POST',
      headers: { ...h, 'content-type': 'application/octet-stream' },
      body: SECRET,
    })
    const policy = {
      version: POLICY_VERSION,
      rules: [{ effect: 'allow', resources: ['default/key/*'], when: 'tee == "sample"' }],
    }
    await call(`${kbs.url}/kbs/v0/resource-policy`, {
      method: 'POST',
      headers: { ...h, 'content-type': 'application/json' },
      body: JSON.stringify({ policy: Buffer.from(JSON.stringify(policy)).toString('base64url') }),
    })
  })
  afterAll(async () => {
    await kbs?.close()
  })

  function expectError(r: { status: number; body: unknown }, status: number, type: string): void {
    expect(r.status).toBe(status)
    expect(r.body).toEqual({ type: `${ERROR_PREFIX}${type}`, detail: expect.any(String) })
  }

  describe('wire format', () => {
    it('auth: Challenge {nonce, extra-params:""} and a kbs-session-id cookie', async () => {
      const r = await auth(kbs.url)
      expect(r.status).toBe(200)
      expect(Object.keys(r.body as object).sort()).toEqual(['extra-params', 'nonce'])
      expect((r.body as { 'extra-params': unknown })['extra-params']).toBe('')
      expect(r.nonce).toMatch(/^[A-Za-z0-9+/]{43}=$/)
      expect(Buffer.from(r.nonce!, 'base64').length).toBe(32)
      expect(r.headers.get('set-cookie')).toMatch(
        /^kbs-session-id=[0-9a-f]{32}; Expires=[^;]+ GMT; HttpOnly; SameSite=Strict$/,
      )
    })

    it('accepts the guest request shape with supported-hash-algorithms', async () => {
      const r = await call(`${kbs.url}/kbs/v0/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          version: '0.4.0',
          tee: 'sample',
          'extra-params': { 'supported-hash-algorithms': ['sha256', 'sha384', 'sha512', 'sm3'] },
        }),
      })
      expect(r.status).toBe(200)
    })

    it('attest: {token} as an ES256 EAR JWT, cookie set again; resource: flattened JWE for the session key', async () => {
      const a = await auth(kbs.url)
      const { pub, priv } = sessionKey()
      const r = await attest(kbs.url, a.cookie, attestationBody(a.nonce!, pub, sampleEvidence(a.nonce!, pub)))
      expect(r.status).toBe(200)
      expect(Object.keys(r.body as object)).toEqual(['token'])
      expect(r.headers.get('set-cookie')?.split(';')[0]).toBe(a.cookie)
      const token = (r.body as { token: string }).token
      const [h, p] = token
        .split('.')
        .slice(0, 2)
        .map((s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Record<string, unknown>)
      expect(h).toMatchObject({ alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256' } })
      expect(p).toMatchObject({
        eat_profile: 'tag:github.com,2024:confidential-containers/Trustee',
        submods: {
          cpu0: {
            'ear.status': 'contraindicated',
            'ear.trustworthiness-vector': { hardware: 97 },
            'ear.veraison.annotated-evidence': {
              sample: { svn: '1' },
              runtime_data_claims: { nonce: a.nonce, 'tee-pubkey': pub },
            },
          },
        },
      })
      expect((p!.exp as number) - (p!.iat as number)).toBe(300)
      // The cookie alone is enough for the resource (trustee: the session token wins).
      const res = await call(`${kbs.url}/kbs/v0/resource/default/key/app`, { headers: { cookie: a.cookie! } })
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toMatch(/^application\/json/)
      expect(Object.keys(res.body as object).sort()).toEqual([
        'ciphertext',
        'encrypted_key',
        'iv',
        'protected',
        'tag',
      ])
      const { plaintext } = await flattenedDecrypt(res.body as never, priv)
      expect(Buffer.from(plaintext)).toEqual(SECRET)
      expect(res.text).not.toContain(SECRET.toString('base64'))
    })

    it('a Bearer token works without the cookie, with any session', async () => {
      const { token, priv } = await sampleHandshake(kbs.url)
      const res = await call(`${kbs.url}/kbs/v0/resource/default/key/app`, {
        headers: { authorization: `Bearer ${token}` },
      })
      expect(res.status).toBe(200)
      expect(Buffer.from((await flattenedDecrypt(res.body as never, priv)).plaintext)).toEqual(SECRET)
    })
  })

  describe('refusals', () => {
    it('protocol version mismatch → 401 AttestationError naming the mismatch', async () => {
      const r = await auth(kbs.url, 'sample', '0.1.1')
      expectError(r, 401, 'AttestationError')
      expect((r.body as { detail: string }).detail).toContain('KBS Client Protocol Version Mismatch')
    })

    it('unknown tee → 401', async () => {
      expectError(await auth(kbs.url, 'quantum'), 401, 'AttestationError')
    })

    it('a known TEE that is not enabled → 401', async () => {
      expectError(await auth(kbs.url, 'sgx'), 401, 'AttestationError')
    })

    it('replayed nonce: evidence for an old session does not work in a new one', async () => {
      const first = await auth(kbs.url)
      const { pub } = sessionKey()
      const oldBody = attestationBody(first.nonce!, pub, sampleEvidence(first.nonce!, pub))
      expect((await attest(kbs.url, first.cookie, oldBody)).status).toBe(200)
      // Same session again: consumed.
      expectError(await attest(kbs.url, first.cookie, oldBody), 401, 'AttestationError')
      // New session, old nonce and evidence.
      const second = await auth(kbs.url)
      expectError(await attest(kbs.url, second.cookie, oldBody), 401, 'AttestationError')
    })

    it('evidence that does not bind the tee-pubkey → 401, and no token', async () => {
      const a = await auth(kbs.url)
      const { pub } = sessionKey()
      const other = sessionKey().pub
      const r = await attest(
        kbs.url,
        a.cookie,
        attestationBody(a.nonce!, pub, sampleEvidence(a.nonce!, other)),
      )
      expectError(r, 401, 'AttestationError')
      expect(r.text).not.toContain('token')
    })

    it('no cookie, unknown cookie, garbage cookie → 401', async () => {
      const { pub } = sessionKey()
      const body = attestationBody('x', pub, {})
      expectError(await attest(kbs.url, undefined, body), 401, 'AttestationError')
      expectError(
        await attest(kbs.url, 'kbs-session-id=0123456789abcdef0123456789abcdef', body),
        401,
        'AttestationError',
      )
      expectError(await attest(kbs.url, 'kbs-session-id=../../etc/passwd', body), 401, 'AttestationError')
    })

    it('expired session → 401', async () => {
      const a = await auth(kbs.url)
      await new Promise((r) => setTimeout(r, 5200))
      const { pub } = sessionKey()
      expectError(
        await attest(kbs.url, a.cookie, attestationBody(a.nonce!, pub, sampleEvidence(a.nonce!, pub))),
        401,
        'AttestationError',
      )
    }, 15_000)

    it('malformed attestation bodies → 401 SerdeError, never 5xx', async () => {
      const a = await auth(kbs.url)
      for (const body of [
        '{',
        '[]',
        'null',
        '{"runtime-data":1}',
        JSON.stringify({
          'runtime-data': { nonce: a.nonce, 'tee-pubkey': { kty: 'oct' } },
          'tee-evidence': {},
        }),
      ])
        expectError(await attest(kbs.url, a.cookie, body), 401, 'SerdeError')
    })

    it('resource without a token, with a forged token, or a token of another KBS → 401', async () => {
      expectError(await call(`${kbs.url}/kbs/v0/resource/default/key/app`), 401, 'TokenNotFound')
      const { token } = await sampleHandshake(kbs.url)
      const [h, p, s] = token.split('.')
      const claims = JSON.parse(Buffer.from(p!, 'base64url').toString('utf8')) as Record<string, unknown>
      claims.exp = (claims.exp as number) + 3600
      const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`
      expectError(
        await call(`${kbs.url}/kbs/v0/resource/default/key/app`, {
          headers: { authorization: `Bearer ${forged}` },
        }),
        401,
        'TokenVerifierError',
      )
      // Signed by another key, with that key in the header (trustee's insecure_header_jwk must stay off).
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      const jwk = publicKey.export({ format: 'jwk' })
      const foreign = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! } })
        .sign(privateKey)
      expectError(
        await call(`${kbs.url}/kbs/v0/resource/default/key/app`, {
          headers: { authorization: `Bearer ${foreign}` },
        }),
        401,
        'TokenVerifierError',
      )
      const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`
      expectError(
        await call(`${kbs.url}/kbs/v0/resource/default/key/app`, {
          headers: { authorization: `Bearer ${none}` },
        }),
        401,
        'TokenVerifierError',
      )
    })

    it('policy deny → 401 PolicyDeny without the resource; missing resource → 404', async () => {
      const { token } = await sampleHandshake(kbs.url)
      const deny = await call(`${kbs.url}/kbs/v0/resource/other/key/app`, {
        headers: { authorization: `Bearer ${token}` },
      })
      expectError(deny, 401, 'PolicyDeny')
      expectError(
        await call(`${kbs.url}/kbs/v0/resource/default/key/nothing`, {
          headers: { authorization: `Bearer ${token}` },
        }),
        404,
        'ResourceNotFound',
      )
    })

    it.each([
      '/kbs/v0/resource/default/key/..',
      '/kbs/v0/resource/default/%2e%2e/app',
      '/kbs/v0/resource/default/key%2fapp/x',
      '/kbs/v0/resource/default//app',
      '/kbs/v0/resource/default/key/app/extra',
      '/kbs/v0/resource/default/key',
      '/kbs/v0/resource/../../../etc/passwd',
      '/kbs/v0/resource/.%2e/key/app',
      '/kbs/v0/resource/default/key/app%00',
      '/kbs/v0/resource/default/key/%E2%80%AE',
    ])('path %s → 404 InvalidRequestPath', async (path) => {
      const { token } = await sampleHandshake(kbs.url)
      const r = await rawGet(kbs.url, path, { authorization: `Bearer ${token}` })
      expect(r.status).toBe(404)
      expect((r.body as { type: string }).type).toMatch(/InvalidRequestPath$/)
    })

    it('unknown plugin → 404 PluginNotFound', async () => {
      expectError(await call(`${kbs.url}/kbs/v0/nebula-ca/x`), 404, 'PluginNotFound')
    })

    it('oversized bodies → 413 with the error body', async () => {
      const big = Buffer.alloc(3 * 1024 * 1024, 0x41)
      const r = await call(`${kbs.url}/kbs/v0/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: big,
      })
      expectError(r, 413, 'PayloadTooLarge')
      const h = await kbs.adminHeaders()
      expectError(
        await call(`${kbs.url}/kbs/v0/resource/default/key/big`, {
          method: 'POST',
          headers: { ...h, 'content-type': 'application/octet-stream' },
          body: big,
        }),
        413,
        'PayloadTooLarge',
      )
    })
  })

  describe('admin API', () => {
    const put = async (headers: Record<string, string>): Promise<{ status: number; body: unknown }> =>
      call(`${kbs.url}/kbs/v0/resource/default/key/admin-test`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/octet-stream' },
        body: 'v',
      })

    it('missing, malformed, wrong-key, expired and too-long-lived tokens → 401 AdminAuthAccess', async () => {
      expectError(await put({}), 401, 'AdminAuthAccess')
      expectError(await put({ authorization: 'Bearer nope' }), 401, 'AdminAuthAccess')
      expectError(await put({ authorization: 'Basic YWRtaW46YWRtaW4=' }), 401, 'AdminAuthAccess')
      const other = generateKeyPairSync('ed25519').privateKey
      expectError(
        await put({ authorization: `Bearer ${await signAdminToken(other)}` }),
        401,
        'AdminAuthAccess',
      )
      const expired = await new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA' })
        .setIssuedAt(Math.floor(Date.now() / 1000) - 900)
        .setExpirationTime(Math.floor(Date.now() / 1000) - 600)
        .sign(kbs.adminKey)
      expectError(await put({ authorization: `Bearer ${expired}` }), 401, 'AdminAuthAccess')
      const longLived = await new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA' })
        .setIssuedAt()
        .setExpirationTime('30d')
        .sign(kbs.adminKey)
      expectError(await put({ authorization: `Bearer ${longLived}` }), 401, 'AdminAuthAccess')
      const noExp = await new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA' })
        .setIssuedAt()
        .sign(kbs.adminKey)
      expectError(await put({ authorization: `Bearer ${noExp}` }), 401, 'AdminAuthAccess')
      // An attestation token is not an admin token.
      const { token } = await sampleHandshake(kbs.url)
      expectError(await put({ authorization: `Bearer ${token}` }), 401, 'AdminAuthAccess')
      expect((await put(await kbs.adminHeaders())).status).toBe(200)
    })

    it('an invalid policy is refused and the old one stays', async () => {
      const h = { ...(await kbs.adminHeaders()), 'content-type': 'application/json' }
      const before = await call(`${kbs.url}/kbs/v0/resource-policy`, { headers: h })
      const r = await call(`${kbs.url}/kbs/v0/resource-policy`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({ policy: Buffer.from('package policy').toString('base64url') }),
      })
      expectError(r, 401, 'ParsePolicyError')
      expect((await call(`${kbs.url}/kbs/v0/resource-policy`, { headers: h })).body).toEqual(before.body)
    })

    it('reference values: RVPS message in, stored form out; malformed → RvpsError', async () => {
      const h = { ...(await kbs.adminHeaders()), 'content-type': 'application/json' }
      const payload = Buffer.from(JSON.stringify({ 'tpm.pcr11': ['AB12'] })).toString('base64')
      expect(
        (
          await call(`${kbs.url}/kbs/v0/reference-value`, {
            method: 'POST',
            headers: h,
            body: JSON.stringify({ version: '0.1.0', type: 'sample', payload }),
          })
        ).status,
      ).toBe(200)
      const got = await call(`${kbs.url}/kbs/v0/reference-value/tpm.pcr11`, { headers: h })
      expect(got.body).toMatchObject({
        version: '0.1.0',
        name: 'tpm.pcr11',
        value: ['AB12'],
        expiration: expect.any(String),
      })
      expectError(
        await call(`${kbs.url}/kbs/v0/reference-value`, {
          method: 'POST',
          headers: h,
          body: JSON.stringify({ version: '0.1.0', type: 'sample', payload: 'bm90IGpzb24=' }),
        }),
        401,
        'RvpsError',
      )
    })
  })
})

describe('KBS without sample', () => {
  it('refuses the sample TEE when it is not enabled', async () => {
    const kbs = await startTestKbs({ allowSample: false })
    try {
      const r = await auth(kbs.url)
      expect(r.status).toBe(401)
      expect((r.body as { detail: string }).detail).toMatch(/not enabled/)
    } finally {
      await kbs.close()
    }
  })
})
