import { createHash, timingSafeEqual } from 'node:crypto'
import { fitReportData } from '../../../lib/attest/report-data.js'
import {
  INIT_DATA_PCR,
  QUALIFYING_DATA_SIZE,
  SHA256_PCR_SIZE,
  SIGNING_HASHES,
  TPM_ALG,
} from '../../../lib/attest/tpm/constants.js'
import { decodeTpmEvidence, type DecodedTpmEvidence } from '../../../lib/attest/tpm/evidence.js'
import { parseQuoteAttest, type QuoteAttest } from '../../../lib/attest/tpm/quote-attest.js'
import {
  parseAkPublic,
  parseTpmSignature,
  verifyQuoteSignature,
  type TpmSignature,
} from '../../../lib/attest/tpm/signature.js'
import type { Verifier, VerifierResult, VerifyContext } from '../../../lib/attest/types.js'
import { CofferError } from '../../../lib/util/errors.js'
import { appraise } from './appraise.js'
import type { TpmVerifierSettings } from './settings.js'

/**
 * The `tpm` verifier. `verify` reads as trustee's checklist (deps/verifier/src/tpm), each step a
 * function below: decode → parse → signature → PCR digest → report data → init-data → appraise.
 * Structure errors are ERR_ATTEST_EVIDENCE_INVALID, a bad signature or PCR set
 * ERR_ATTEST_VERIFICATION_FAILED, a quote for another session ERR_ATTEST_REPORT_DATA_MISMATCH.
 * Unlike trustee, an untrusted AK is not an error: it makes `hardware` CONTRAINDICATED, and the
 * resource policy decides.
 */
export class TpmVerifier implements Verifier {
  readonly tee = 'tpm'

  constructor(private readonly settings: TpmVerifierSettings) {}

  async verify(evidence: unknown, ctx: VerifyContext): Promise<VerifierResult> {
    // === decode and parse: untrusted bytes → structures, bounds-checked
    const ev = decodeTpmEvidence(evidence)
    const ak = parseAkPublic(ev.akPublicDer)
    const attest = parseQuoteAttest(ev.message)
    const signature = parseTpmSignature(ev.signature)
    // === the AK signed exactly these bytes
    verifyQuoteSignature(ak.key, ev.message, signature)
    // === the PCR values sent are the ones the TPM quoted
    const pcrs = checkPcrDigest(attest, signature, ev)
    // === the quote was made for this session
    checkReportData(attest, ctx.reportData)
    // === the init-data the guest sent is the one measured into PCR8
    if (ctx.initDataDigest) checkInitData(pcrs, ctx.initDataDigest)
    // === appraisal against reference values
    const trust = appraise(
      { ak: { canonicalDer: ak.canonicalDer, b64: ev.akPublicB64 }, pcrs },
      ctx.referenceValues,
      this.settings.trustedAkFingerprints,
    )
    return { claims: claimsOf(attest, pcrs, ev, ak.canonicalDer), trust }
  }
}

/**
 * The selection must be one sha256 bank with as many PCRs as values sent, and the hash (with the
 * signing scheme's hash, TPM2_Quote's rule) of the values in order must be the quote's pcrDigest.
 * Returns PCR index → lowercase hex value.
 */
function checkPcrDigest(attest: QuoteAttest, sig: TpmSignature, ev: DecodedTpmEvidence): Map<number, string> {
  const [bank, ...others] = attest.pcrSelections
  if (!bank || others.length > 0 || bank.hashAlg !== TPM_ALG.SHA256) {
    throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', 'the quote must select PCRs of the sha256 bank only')
  }
  if (bank.pcrs.length !== ev.pcrValues.length) {
    throw new CofferError(
      'ERR_ATTEST_EVIDENCE_INVALID',
      `the quote selects ${bank.pcrs.length} PCRs but the evidence has ${ev.pcrValues.length} values`,
    )
  }
  // verifyQuoteSignature accepted the signature, so its hash is one of SIGNING_HASHES.
  const hash = SIGNING_HASHES.get(sig.hashAlg)!.name
  const h = createHash(hash)
  for (const v of ev.pcrValues) h.update(v)
  if (!h.digest().equals(attest.pcrDigest)) {
    throw new CofferError(
      'ERR_ATTEST_VERIFICATION_FAILED',
      "the PCR values do not match the quote's pcrDigest",
    )
  }
  return new Map(bank.pcrs.map((p, i) => [p, Buffer.from(ev.pcrValues[i]!).toString('hex')]))
}

/** extraData must be the report data fitted to 32 bytes (guest-components' TPM_REPORT_DATA_SIZE). */
function checkReportData(attest: QuoteAttest, reportData: Uint8Array): void {
  const expected = fitReportData(reportData, QUALIFYING_DATA_SIZE)
  const got = attest.extraData
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
    throw new CofferError(
      'ERR_ATTEST_REPORT_DATA_MISMATCH',
      'the TPM quote does not bind this session’s report data',
    )
  }
}

/**
 * PCR8 must be sha256(0³² ‖ digest): one extend of a reset PCR, as guest-components'
 * `bind_init_data` does and trustee's `verify_init_data` checks. The digest is fitted to 32 bytes
 * first (trustee would fail on anything but a 32-byte sha256 digest; for that case this is the
 * same check).
 */
function checkInitData(pcrs: ReadonlyMap<number, string>, initDataDigest: Uint8Array): void {
  const pcr8 = pcrs.get(INIT_DATA_PCR)
  if (pcr8 === undefined) {
    throw new CofferError(
      'ERR_ATTEST_VERIFICATION_FAILED',
      `init-data was sent but the quote does not cover PCR${INIT_DATA_PCR}`,
    )
  }
  const expected = createHash('sha256')
    .update(Buffer.alloc(SHA256_PCR_SIZE))
    .update(fitReportData(initDataDigest, SHA256_PCR_SIZE))
    .digest('hex')
  if (pcr8 !== expected) {
    throw new CofferError(
      'ERR_ATTEST_VERIFICATION_FAILED',
      `PCR${INIT_DATA_PCR} does not bind the init-data digest`,
    )
  }
}

/**
 * Claims, named as trustee's tpm verifier names them where it has them (`pcr00`…, `report_data`,
 * `init_data`, `ak_public`), plus the AK fingerprint and the quote's clock and firmware.
 */
function claimsOf(
  attest: QuoteAttest,
  pcrs: ReadonlyMap<number, string>,
  ev: DecodedTpmEvidence,
  akCanonicalDer: Uint8Array,
): Record<string, unknown> {
  const claims: Record<string, unknown> = {}
  for (const [i, v] of pcrs) claims[`pcr${String(i).padStart(2, '0')}`] = v
  const pcr8 = pcrs.get(INIT_DATA_PCR)
  if (pcr8 !== undefined) claims.init_data = pcr8
  claims.report_data = Buffer.from(attest.extraData).toString('hex')
  claims.ak_public = ev.akPublicB64
  claims.ak_fingerprint = createHash('sha256').update(akCanonicalDer).digest('hex')
  claims.qualified_signer = Buffer.from(attest.qualifiedSigner).toString('hex')
  // u64s as decimal strings: clock (ms) fits a double for ages, but firmware versions need not.
  claims.clock = attest.clockInfo.clock.toString()
  claims.reset_count = attest.clockInfo.resetCount
  claims.restart_count = attest.clockInfo.restartCount
  claims.safe = attest.clockInfo.safe
  claims.firmware_version = attest.firmwareVersion.toString(16).padStart(16, '0')
  return claims
}
