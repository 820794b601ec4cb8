import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { issueEarToken, teePubKeyOf, verifyEarToken } from '../../../lib/kbs/ear-token.js'

const key = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  return { privateKey, publicKey }
}
const input = {
  tee: 'sample',
  claims: { svn: '1' },
  trust: { hardware: 97 },
  runtimeData: {
    nonce: 'n',
    'tee-pubkey': {
      kty: 'EC' as const,
      crv: 'P-256' as const,
      alg: 'ECDH-ES+A256KW' as const,
      x: 'AQ',
      y: 'Ag',
    },
    'additional-evidence': '',
  },
  reportData: 'ab',
}

describe('EAR tokens', () => {
  it('verify with the issuing key, expire on time even when cached, and never verify with another key', async () => {
    const signer = key()
    const t0 = Date.now()
    const { token } = await issueEarToken(signer, input, 60, 'test', t0)
    const claims = await verifyEarToken(token, signer.publicKey, t0)
    expect(teePubKeyOf(claims)).toEqual(input.runtimeData['tee-pubkey'])
    expect(claims.submods.cpu0['ear.status']).toBe('contraindicated')
    // Cached now: still checked for expiry.
    await expect(verifyEarToken(token, signer.publicKey, t0 + 61_000)).rejects.toMatchObject({
      code: 'ERR_ATTEST_VERIFICATION_FAILED',
    })
    // Not cached for another key.
    await expect(verifyEarToken(token, key().publicKey, t0)).rejects.toMatchObject({
      code: 'ERR_ATTEST_VERIFICATION_FAILED',
    })
  })

  it('a token past its expiry never verifies in the first place', async () => {
    const signer = key()
    const { token } = await issueEarToken(signer, input, 10, 'test', Date.now() - 60_000)
    await expect(verifyEarToken(token, signer.publicKey)).rejects.toThrow(/expired/)
  })
})
