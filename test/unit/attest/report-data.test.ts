import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { fitReportData, jcs, runtimeDataDigest } from '../../../lib/attest/report-data.js'
import { earStatus, tierOf } from '../../../lib/attest/trust.js'

describe('runtime data binding', () => {
  it('matches trustee attestation-service test vector (JCS + SHA-384)', () => {
    const text = jcs({ b: 1, a: 'test', c: { d: 'e' } })
    expect(text).toBe('{"a":"test","b":1,"c":{"d":"e"}}')
    expect(createHash('sha384').update(text).digest('hex')).toBe(
      'e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c4597480a186427c813ca941da78870c3',
    )
  })

  it('hashes {nonce, tee-pubkey, additional-evidence} exactly as the guest does', () => {
    const digest = runtimeDataDigest({
      nonce: Buffer.alloc(32).toString('base64'),
      'tee-pubkey': { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: 'AQ', y: 'Ag' },
      'additional-evidence': '',
    })
    expect(Buffer.from(digest).toString('hex')).toBe(
      'c659c8450cacb5fe3dd38b1bb0af9a913b9ec007da5cdc7f7807dd73ec4d041229db45f981c5470dec705ae2270eac11',
    )
    expect(Buffer.from(digest).toString('base64')).toBe(
      'xlnIRQystf4904sbsK+akTuewAfaXNx/eAfdc+xNBBIp20X5gcVHDexwWuInDqwR',
    )
  })

  it('pads to 64 bytes (SNP/TDX) and truncates to 32 (TPM)', () => {
    const d = new Uint8Array(48).fill(7)
    const padded = fitReportData(d, 64)
    expect(padded.length).toBe(64)
    expect([...padded.subarray(0, 48)].every((b) => b === 7)).toBe(true)
    expect([...padded.subarray(48)].every((b) => b === 0)).toBe(true)
    expect(fitReportData(d, 32)).toEqual(new Uint8Array(32).fill(7))
  })
})

describe('EAR trust tiers', () => {
  it.each([
    [0, 'none'],
    [1, 'none'],
    [2, 'affirming'],
    [3, 'affirming'],
    [32, 'warning'],
    [33, 'warning'],
    [36, 'warning'],
    [96, 'contraindicated'],
    [97, 'contraindicated'],
    [-128, 'contraindicated'],
  ])('claim %i is %s', (value, tier) => {
    expect(tierOf(value)).toBe(tier)
  })

  it('the status is the worst claim', () => {
    expect(earStatus({})).toBe('none')
    expect(earStatus({ hardware: 2, executables: 3 })).toBe('affirming')
    expect(earStatus({ hardware: 2, executables: 33 })).toBe('warning')
    expect(earStatus({ hardware: 97, executables: 3, configuration: 2 })).toBe('contraindicated')
  })
})
