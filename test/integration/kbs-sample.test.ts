import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KbsClient } from '../../lib/kbs/client.js'
import { createSampleAttester } from '../../plugins/attester/sample/index.js'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'

const ALLOW_SAMPLE_POLICY = JSON.stringify({
  version: 'coffer.dev/kbs-resource-policy/v1',
  rules: [{ name: 'sample keys', effect: 'allow', resources: ['default/key/*'], when: 'tee == "sample"' }],
})

describe('KBS with the sample attester, end to end over HTTP', () => {
  let kbs: TestKbs
  beforeAll(async () => {
    kbs = await startTestKbs()
  })
  afterAll(async () => {
    await kbs?.close()
  })

  async function admin(
    method: string,
    path: string,
    body?: string | Buffer,
    type = 'application/json',
  ): Promise<Response> {
    return fetch(`${kbs.url}${path}`, {
      method,
      headers: { ...(await kbs.adminHeaders()), 'content-type': type },
      ...(body !== undefined ? { body } : {}),
    })
  }

  it('releases a resource to an attested client once the policy allows it', async () => {
    const secret = Buffer.from('0123456789abcdef0123456789abcdef')
    expect(
      (await admin('POST', '/kbs/v0/resource/default/key/one', secret, 'application/octet-stream')).status,
    ).toBe(200)
    const client = new KbsClient({ url: kbs.url, attester: createSampleAttester(() => {}) })
    try {
      await expect(client.getResource('kbs:///default/key/one')).rejects.toMatchObject({
        code: 'ERR_KBS_DENIED',
      })
      const set = await admin(
        'POST',
        '/kbs/v0/resource-policy',
        JSON.stringify({ policy: Buffer.from(ALLOW_SAMPLE_POLICY).toString('base64url') }),
      )
      expect(set.status).toBe(200)
      expect(Buffer.from(await client.getResource('kbs:///default/key/one'))).toEqual(secret)
      await expect(client.getResource('kbs:///default/key/missing')).rejects.toMatchObject({
        code: 'ERR_KBS_RESOURCE_NOT_FOUND',
      })
      await expect(client.getResource('kbs:///other/key/one')).rejects.toMatchObject({
        code: 'ERR_KBS_DENIED',
      })
    } finally {
      await client.close()
    }
  })
})
