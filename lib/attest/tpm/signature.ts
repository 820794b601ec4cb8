import { constants, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { CofferError } from '../../util/errors.js'
import { MAX_TPM_SIGNATURE_BYTES } from '../../util/limits.js'
import { SIGNING_HASHES, TPM_ALG } from './constants.js'
import { MarshalReader } from './marshal-reader.js'

/**
 * A TPMT_SIGNATURE (Part 2, §11.3.4) as tss-esapi's `Signature::marshall` writes it and
 * trustee's verifier unmarshals it: sigAlg u16, then per scheme a hash u16 and either one TPM2B
 * (RSASSA, RSAPSS) or two (ECDSA r, s). `tpm2_quote -s` writes the same bytes (its default `tss`
 * format).
 */
export type TpmSignature =
  | { readonly scheme: 'rsassa' | 'rsapss'; readonly hashAlg: number; readonly sig: Uint8Array }
  | { readonly scheme: 'ecdsa'; readonly hashAlg: number; readonly r: Uint8Array; readonly s: Uint8Array }

// TPM2B_PUBLIC_KEY_RSA holds at most MAX_RSA_KEY_BYTES (512, RSA-4096); an ECC parameter at most
// MAX_ECC_KEY_BYTES (66, P-521).
const MAX_RSA_SIG = 512
const MAX_ECC_PARAM = 66

/** Parses a TPMT_SIGNATURE; an unknown scheme or malformed bytes is ERR_ATTEST_EVIDENCE_INVALID. */
export function parseTpmSignature(bytes: Uint8Array): TpmSignature {
  // Annotated so TypeScript sees that r.fail() never returns.
  const r: MarshalReader = new MarshalReader(bytes, 'TPMT_SIGNATURE')
  if (bytes.length > MAX_TPM_SIGNATURE_BYTES) r.fail(`${bytes.length} bytes is too large`)
  const sigAlg = r.u16('sigAlg')
  let out: TpmSignature
  if (sigAlg === TPM_ALG.RSASSA || sigAlg === TPM_ALG.RSAPSS) {
    const hashAlg = r.u16('hash')
    out = {
      scheme: sigAlg === TPM_ALG.RSASSA ? 'rsassa' : 'rsapss',
      hashAlg,
      sig: r.tpm2b('sig', MAX_RSA_SIG),
    }
  } else if (sigAlg === TPM_ALG.ECDSA) {
    const hashAlg = r.u16('hash')
    out = {
      scheme: 'ecdsa',
      hashAlg,
      r: r.tpm2b('signatureR', MAX_ECC_PARAM),
      s: r.tpm2b('signatureS', MAX_ECC_PARAM),
    }
  } else {
    r.fail(`signature scheme 0x${sigAlg.toString(16)} is not RSASSA, RSAPSS or ECDSA`)
  }
  r.end()
  return out
}

/** An AK public key, and the identity verifiers trust it by. */
export interface AkPublic {
  readonly key: KeyObject
  /**
   * The key re-encoded as canonical DER SPKI (OpenSSL's encoding, as `tpm2_readpublic -f der`
   * writes it); its sha256 is the AK fingerprint.
   */
  readonly canonicalDer: Buffer
}

/**
 * Parses a DER SubjectPublicKeyInfo; anything else is ERR_ATTEST_EVIDENCE_INVALID.
 *
 * OpenSSL also parses encodings DER forbids, e.g. a 4-byte exponent `00 01 00 01` (which
 * guest-components' attester appears to write: it builds the SPKI with picky-asn1 from
 * `65537u32.to_be_bytes()`) or RSA parameters given as an empty OCTET STRING instead of NULL.
 * Each variant is the same key, so the AK is identified by its canonical re-encoding: every
 * spelling of one key has one fingerprint, and no spelling makes a second identity.
 */
export function parseAkPublic(der: Uint8Array): AkPublic {
  try {
    const key = createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' })
    return { key, canonicalDer: key.export({ format: 'der', type: 'spki' }) }
  } catch (cause) {
    throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', 'ak_public is not a DER SubjectPublicKeyInfo', {
      cause,
    })
  }
}

/** Bytes of one ECDSA coordinate for the curves a TPM AK can use. */
const EC_FIELD_BYTES: Readonly<Record<string, number>> = { prime256v1: 32, secp384r1: 48, secp521r1: 66 }

/**
 * Checks `sig` over `message` with the AK. The key's type must fit the scheme (an RSA AK for
 * RSASSA/RSAPSS, an EC AK for ECDSA). Every failure is the same ERR_ATTEST_VERIFICATION_FAILED
 * with a fixed message, so a caller learns nothing about why (STYLE §6).
 */
export function verifyQuoteSignature(ak: KeyObject, message: Uint8Array, sig: TpmSignature): void {
  if (!checkSignature(ak, message, sig)) {
    throw new CofferError('ERR_ATTEST_VERIFICATION_FAILED', 'TPM quote signature verification failed')
  }
}

function checkSignature(ak: KeyObject, message: Uint8Array, sig: TpmSignature): boolean {
  const hash = SIGNING_HASHES.get(sig.hashAlg)
  if (!hash) return false
  try {
    if (sig.scheme === 'ecdsa') {
      const size = EC_FIELD_BYTES[ak.asymmetricKeyDetails?.namedCurve ?? '']
      if (ak.asymmetricKeyType !== 'ec' || size === undefined) return false
      if (sig.r.length > size || sig.s.length > size) return false
      // The TPM drops leading zero bytes of r and s; IEEE P1363 wants both at full width.
      const p1363 = Buffer.concat([leftPad(sig.r, size), leftPad(sig.s, size)])
      return cryptoVerify(hash.name, message, { key: ak, dsaEncoding: 'ieee-p1363' }, p1363)
    }
    if (ak.asymmetricKeyType !== 'rsa') return false
    const padding =
      sig.scheme === 'rsassa'
        ? { padding: constants.RSA_PKCS1_PADDING }
        : // TPMs use the digest size as salt length, some older ones the maximum: accept either.
          { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }
    return cryptoVerify(hash.name, message, { key: ak, ...padding }, sig.sig)
  } catch {
    // OpenSSL throws on some malformed inputs (e.g. an RSA signature longer than the modulus).
    return false
  }
}

function leftPad(b: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size)
  out.set(b, size - b.length)
  return out
}
