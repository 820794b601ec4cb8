/**
 * Full KBS handshakes with a real TPM 2.0 quote (swtpm + tpm2-tools): the resource is released
 * only once the AK is trusted and the PCRs match the reference values, and refused again when a PCR
 * changes.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { provisionAk } from '../../lib/attest/tpm/provision.js'
import { KbsClient } from '../../lib/kbs/client.js'
import { POLICY_VERSION } from '../../lib/kbs/resource-policy.js'
import { createAttester } from '../../plugins/index.js'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'
import { call } from '../helpers/rcar.js'
import { startSwtpm, type Swtpm } from '../helpers/swtpm.js'

const run = promisify(execFile)
const SECRET = Buffer.from('key released only to a measured TPM')

function claimsOf(token: string): Record<string, unknown> {
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as {
    submods: { cpu0: Record<string, unknown> }
  }
  return payload.submods.cpu0
}

describe('KBS with the tpm attester (swtpm)', () => {
  let tpm: Swtpm
  let kbs: TestKbs
  beforeAll(async () => {
    tpm = await startSwtpm()
    await provisionAk({ tcti: tpm.tcti })
    kbs = await startTestKbs({ allowSample: false })
    const h = await kbs.adminHeaders()
    await call(`${kbs.url}/kbs/v0/resource/default/key/tpm`, {
      method: 'POST',
      headers: { ...h, 'content-type': 'application/octet-stream' },
      body: SECRET,
    })
    const policy = {
      version: POLICY_VERSION,
      rules: [
        {
          name: 'measured TPM',
          effect: 'allow',
          resources: ['default/key/*'],
          when: 'tee == "tpm" && status == "affirming"',
        },
      ],
    }
    await call(`${kbs.url}/kbs/v0/resource-policy`, {
      method: 'POST',
      headers: { ...h, 'content-type': 'application/json' },
      body: JSON.stringify({ policy: Buffer.from(JSON.stringify(policy)).toString('base64url') }),
    })
  }, 60_000)
  afterAll(async () => {
    await kbs?.close()
    await tpm?.stop()
  })

  const client = (): KbsClient =>
    new KbsClient({ url: kbs.url, attester: createAttester('tpm', { tcti: tpm.tcti }) })

  async function setReferenceValues(values: Record<string, string[]>): Promise<void> {
    const r = await call(`${kbs.url}/kbs/v0/reference-value`, {
      method: 'POST',
      headers: { ...(await kbs.adminHeaders()), 'content-type': 'application/json' },
      body: JSON.stringify({
        version: '0.1.0',
        type: 'sample',
        payload: Buffer.from(JSON.stringify(values)).toString('base64'),
      }),
    })
    expect(r.status).toBe(200)
  }

  it('untrusted AK → contraindicated, denied; trusted AK + matching PCRs → released; PCR extended → denied again', async () => {
    // 1. A valid quote from an AK nobody vouched for.
    let c = client()
    try {
      const cpu0 = claimsOf(await c.token())
      expect(cpu0['ear.status']).toBe('contraindicated')
      expect(cpu0['ear.trustworthiness-vector']).toMatchObject({ hardware: 97, executables: 36 })
      await expect(c.getResource('kbs:///default/key/tpm')).rejects.toMatchObject({ code: 'ERR_KBS_DENIED' })
      // 2. Vouch for the AK and PCR 7 as measured now.
      const evidence = (cpu0['ear.veraison.annotated-evidence'] as { tpm: Record<string, string> }).tpm
      expect(evidence.ak_fingerprint).toMatch(/^[0-9a-f]{64}$/)
      await setReferenceValues({
        'tpm.trusted_ak': [evidence.ak_fingerprint!],
        'tpm.pcr7': [evidence.pcr07!],
      })
    } finally {
      await c.close()
    }
    c = client()
    try {
      expect(Buffer.from(await c.getResource('kbs:///default/key/tpm'))).toEqual(SECRET)
      expect(claimsOf(await c.token())['ear.status']).toBe('affirming')
    } finally {
      await c.close()
    }
    // 3. The guest's boot changes: PCR 7 no longer matches.
    await run('tpm2_pcrextend', ['-T', tpm.tcti, `7:sha256=${'ab'.repeat(32)}`])
    c = client()
    try {
      const cpu0 = claimsOf(await c.token())
      expect(cpu0['ear.trustworthiness-vector']).toMatchObject({ hardware: 2, executables: 33 })
      await expect(c.getResource('kbs:///default/key/tpm')).rejects.toMatchObject({ code: 'ERR_KBS_DENIED' })
    } finally {
      await c.close()
    }
  }, 120_000)
})
