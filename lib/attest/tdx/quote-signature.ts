import { createHash, createPublicKey, verify, type KeyObject, type X509Certificate } from 'node:crypto'
import { CofferError } from '../../util/errors.js'
import { bytesEqual } from '../reference-check.js'
import { parsePemCertificates, verifyCertificatePath } from '../vendor-certs.js'
import { SGX_REPORT_DATA_OFFSET, type TdxQuote } from './quote.js'

/**
 * The DCAP signature chain of a TD quote, checked without any collateral fetch:
 *   Intel root (configured) → … → PCK certificate → QE report (signed by the PCK key)
 *   → QE report_data = SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes
 *   → quote (header ‖ body, signed by the attestation key).
 * TCB status (TCB Info, QE Identity, CRLs from Intel PCS) is not evaluated here.
 */

const fail = (why: string): never => {
  throw new CofferError('ERR_ATTEST_VERIFICATION_FAILED', `TDX quote: ${why}`)
}

/** ECDSA P-256/SHA-256 over `data` with a P1363 (r‖s) signature; false on any error. */
function verifyP256(data: Uint8Array, sig: Uint8Array, key: KeyObject): boolean {
  try {
    return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig)
  } catch {
    return false
  }
}

/** The raw x‖y attestation key as a KeyObject; an off-curve point is a verification failure. */
function attestationKeyObject(raw: Uint8Array): KeyObject {
  const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url')
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: b64url(raw.subarray(0, 32)), y: b64url(raw.subarray(32, 64)) },
      format: 'jwk',
    })
  } catch {
    return fail('the attestation key is not a P-256 point')
  }
}

/** Verifies the PCK chain to a configured Intel root; returns the path, PCK certificate first. */
export function verifyPckChain(
  quote: TdxQuote,
  roots: readonly X509Certificate[],
  now: Date,
): X509Certificate[] {
  const certs = parsePemCertificates(
    quote.pckChainPem,
    'TDX PCK certificate chain',
    'ERR_ATTEST_EVIDENCE_INVALID',
  )
  const path = verifyCertificatePath(certs, roots, now, 'TDX PCK certificate chain')
  const pck = path[0]!.publicKey
  if (pck.asymmetricKeyType !== 'ec' || pck.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    fail('the PCK key is not ECDSA P-256')
  }
  return path
}

/** Verifies the quote's signature chain from the PCK certificate down (see the module doc). */
export function verifyTdxQuoteSignatures(quote: TdxQuote, pck: X509Certificate): void {
  // === the QE report is genuine: signed by the platform's PCK key
  if (!verifyP256(quote.qeReport, quote.qeReportSignature, pck.publicKey)) {
    fail('QE report signature verification failed')
  }
  // === the QE vouches for this attestation key (and its auth data)
  const expected = new Uint8Array(64)
  expected.set(createHash('sha256').update(quote.attestationKey).update(quote.qeAuthData).digest())
  const qeReportData = quote.qeReport.subarray(SGX_REPORT_DATA_OFFSET, SGX_REPORT_DATA_OFFSET + 64)
  if (!bytesEqual(qeReportData, expected)) fail('the QE report does not bind the attestation key')
  // === the attestation key signed this header and TD report
  if (!verifyP256(quote.signedBytes, quote.quoteSignature, attestationKeyObject(quote.attestationKey))) {
    fail('quote signature verification failed')
  }
}
