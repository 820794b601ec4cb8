import { constants, generateKeyPairSync, sign } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { parseAkPublic, parseTpmSignature, verifyQuoteSignature } from '../../../lib/attest/tpm/signature.js'
import { isCofferError } from '../../../lib/util/errors.js'
import { marshalSignature, tpmSign } from '../../helpers/tpm-quote.js'

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
const message = Buffer.from('\xffTCG a quote message', 'latin1')

function ok(pub: typeof rsa.publicKey, sig: Buffer, msg: Uint8Array = message): boolean {
  try {
    verifyQuoteSignature(pub, msg, parseTpmSignature(sig))
    return true
  } catch (e) {
    expect(isCofferError(e, 'ERR_ATTEST_VERIFICATION_FAILED')).toBe(true)
    expect((e as Error).message).toBe('TPM quote signature verification failed')
    return false
  }
}

describe('TPMT_SIGNATURE parsing and quote signature verification', () => {
  it('parses RSASSA, RSAPSS and ECDSA signatures', () => {
    expect(parseTpmSignature(tpmSign(rsa.privateKey, 'rsassa', message))).toMatchObject({
      scheme: 'rsassa',
      hashAlg: 0x0b,
    })
    expect(parseTpmSignature(tpmSign(rsa.privateKey, 'rsapss', message))).toMatchObject({
      scheme: 'rsapss',
      hashAlg: 0x0b,
    })
    const e = parseTpmSignature(tpmSign(p256.privateKey, 'ecdsa', message))
    expect(e.scheme).toBe('ecdsa')
  })

  it('verifies RSASSA and RSAPSS with SHA-256, ECDSA with P-256/SHA-256 and P-384/SHA-384', () => {
    expect(ok(rsa.publicKey, tpmSign(rsa.privateKey, 'rsassa', message))).toBe(true)
    expect(ok(rsa.publicKey, tpmSign(rsa.privateKey, 'rsapss', message))).toBe(true)
    expect(ok(p256.publicKey, tpmSign(p256.privateKey, 'ecdsa', message))).toBe(true)
    expect(ok(p384.publicKey, tpmSign(p384.privateKey, 'ecdsa', message, 0x000c))).toBe(true)
  })

  it('accepts RSAPSS with a digest-long salt (swtpm, FIPS 186-4) and with the maximum salt (older TPMs)', () => {
    for (const saltLength of [32, constants.RSA_PSS_SALTLEN_MAX_SIGN]) {
      const raw = sign('sha256', message, {
        key: rsa.privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength,
      })
      expect(ok(rsa.publicKey, marshalSignature('rsapss', 0x0b, raw))).toBe(true)
    }
  })

  it('re-pads ECDSA r and s that the TPM sent without leading zeros', () => {
    // About 1 in 128 signatures has r or s below 2^248; keep signing until one does.
    for (let i = 0; i < 2000; i++) {
      const sig = tpmSign(p256.privateKey, 'ecdsa', Buffer.from(`m${i}`))
      const parsed = parseTpmSignature(sig)
      if (parsed.scheme === 'ecdsa' && (parsed.r.length < 32 || parsed.s.length < 32)) {
        expect(ok(p256.publicKey, sig, Buffer.from(`m${i}`))).toBe(true)
        return
      }
    }
    throw new Error('no short r or s in 2000 signatures')
  })

  it('fails on another message, another key, a key of the wrong type, SHA-1 or a mangled signature', () => {
    const sig = tpmSign(rsa.privateKey, 'rsassa', message)
    expect(ok(rsa.publicKey, sig, Buffer.from('other'))).toBe(false)
    expect(ok(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, sig)).toBe(false)
    expect(ok(p256.publicKey, sig)).toBe(false)
    expect(ok(rsa.publicKey, tpmSign(p256.privateKey, 'ecdsa', message))).toBe(false)
    // the right bytes under the wrong scheme
    const raw = parseTpmSignature(sig)
    expect(ok(rsa.publicKey, marshalSignature('rsapss', 0x0b, (raw as { sig: Uint8Array }).sig))).toBe(false)
    // SHA-1 is not accepted even when the signature is valid
    expect(ok(rsa.publicKey, tpmSign(rsa.privateKey, 'rsassa', message, 0x0004))).toBe(false)
    // an RSA "signature" longer than the modulus
    expect(ok(rsa.publicKey, marshalSignature('rsassa', 0x0b, Buffer.alloc(300, 1)))).toBe(false)
    // an ECDSA coordinate longer than the curve
    expect(ok(p256.publicKey, marshalSignature('ecdsa', 0x0b, Buffer.alloc(66, 1)))).toBe(false)
  })

  it('rejects unknown schemes, oversized parts, truncation and trailing bytes as ERR_ATTEST_EVIDENCE_INVALID', () => {
    const sig = tpmSign(rsa.privateKey, 'rsassa', message)
    const bad = [
      Buffer.from([0x00, 0x15, 0x00, 0x0b, 0x00, 0x00]), // TPM_ALG_ECDAA
      Buffer.concat([Buffer.from([0x00, 0x14, 0x00, 0x0b, 0x02, 0x01]), Buffer.alloc(513)]),
      sig.subarray(0, sig.length - 1),
      Buffer.concat([sig, Buffer.from([0])]),
      Buffer.alloc(0),
    ]
    for (const b of bad)
      expect(() => parseTpmSignature(b)).toThrow(
        expect.objectContaining({ code: 'ERR_ATTEST_EVIDENCE_INVALID' }),
      )
  })

  it('identifies an AK by its canonical DER: lax spellings of one key get one fingerprint', () => {
    const der = rsa.publicKey.export({ format: 'der', type: 'spki' })
    expect(parseAkPublic(der).key.asymmetricKeyType).toBe('rsa')
    expect(parseAkPublic(der).canonicalDer.equals(der)).toBe(true)
    // NULL parameters (05 00) rewritten as an empty OCTET STRING (04 00)
    const octetNull = Buffer.from(der)
    expect(octetNull.subarray(17, 19)).toEqual(Buffer.from([0x05, 0x00]))
    octetNull[17] = 0x04
    // the exponent as 4 bytes 00 01 00 01, as picky-asn1 writes u32 65537 (guest-components)
    const hex = der.toString('hex')
    expect(hex.slice(0, 8) + hex.slice(-10)).toBe('30820122' + '0203010001')
    const wideExponent = Buffer.from(
      '30820123' +
        hex.slice(8, 38) + // AlgorithmIdentifier
        '0382011000' + // BIT STRING, one byte longer
        '3082010b' + // RSAPublicKey, one byte longer
        hex.slice(56, -10) + // modulus
        '020400010001',
      'hex',
    )
    for (const variant of [octetNull, wideExponent]) {
      expect(variant.equals(der)).toBe(false)
      expect(parseAkPublic(variant).canonicalDer.equals(der)).toBe(true)
    }
    expect(() => parseAkPublic(Buffer.from('not der'))).toThrow(
      expect.objectContaining({ code: 'ERR_ATTEST_EVIDENCE_INVALID' }),
    )
  })
})
