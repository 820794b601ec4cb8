/**
 * Two KBS replicas on one PostgreSQL database (a real Debian PostgreSQL started for the test), as
 * a Kubernetes Deployment runs them: a guest may authenticate on one replica and attest on the
 * other, its token works on both, and admin changes made through one are seen by the other.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openKbsStore } from '../../plugins/index.js'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'
import { startPostgres, type TestPostgres } from '../helpers/postgres.js'
import { attest, attestationBody, auth, call, sampleEvidence, sessionKey } from '../helpers/rcar.js'

describe('KBS replicas sharing PostgreSQL', () => {
  let pg: TestPostgres
  let dir: string
  let a: TestKbs
  let b: TestKbs
  beforeAll(async () => {
    pg = await startPostgres()
    const database = await pg.createDatabase()
    dir = await mkdtemp(join(tmpdir(), 'coffer-replicas-'))
    const tokenKey = join(dir, 'token.pem')
    await writeFile(
      tokenKey,
      generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({
        type: 'pkcs8',
        format: 'pem',
      }),
      { mode: 0o600 },
    )
    const replica = async (): Promise<TestKbs> =>
      startTestKbs({
        store: await openKbsStore('postgres', pg.settings(database), dir),
        config: { store: { type: 'postgres' }, attestation: { allow_sample: true, token_key: tokenKey } },
      })
    a = await replica()
    b = await replica()
  }, 120_000)
  afterAll(async () => {
    await a?.close()
    await b?.close()
    await pg?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('auth on one replica, attest on the other; the token and admin changes work on both', async () => {
    // Admin writes through A (with A's admin key; B trusts its own key, so use each replica's).
    const put = await call(`${a.url}/kbs/v0/resource/default/key/shared`, {
      method: 'POST',
      headers: { ...(await a.adminHeaders()), 'content-type': 'application/octet-stream' },
      body: 'shared secret',
    })
    expect(put.status).toBe(200)
    const policy = {
      version: 'coffer.dev/kbs-resource-policy/v1',
      rules: [{ effect: 'allow', resources: ['default/key/*'], when: 'tee == "sample"' }],
    }
    const set = await call(`${b.url}/kbs/v0/resource-policy`, {
      method: 'POST',
      headers: { ...(await b.adminHeaders()), 'content-type': 'application/json' },
      body: JSON.stringify({ policy: Buffer.from(JSON.stringify(policy)).toString('base64url') }),
    })
    expect(set.status).toBe(200)

    const challenge = await auth(a.url)
    const { pub } = sessionKey()
    const attested = await attest(
      b.url,
      challenge.cookie,
      attestationBody(challenge.nonce!, pub, sampleEvidence(challenge.nonce!, pub)),
    )
    expect(attested.status).toBe(200)
    const token = (attested.body as { token: string }).token
    for (const replica of [a, b]) {
      const r = await call(`${replica.url}/kbs/v0/resource/default/key/shared`, {
        headers: { authorization: `Bearer ${token}` },
      })
      expect(r.status).toBe(200)
    }
    // The session cookie also works on the replica that did not attest it.
    expect(
      (await call(`${a.url}/kbs/v0/resource/default/key/shared`, { headers: { cookie: challenge.cookie! } }))
        .status,
    ).toBe(200)
    // The nonce was consumed for the whole cluster.
    expect(
      (
        await attest(
          a.url,
          challenge.cookie,
          attestationBody(challenge.nonce!, pub, sampleEvidence(challenge.nonce!, pub)),
        )
      ).status,
    ).toBe(401)
  }, 60_000)
})
