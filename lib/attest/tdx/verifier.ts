import { CofferError } from '../../util/errors.js'
import { fitReportData } from '../report-data.js'
import { bytesEqual } from '../reference-check.js'
import type { Verifier, VerifierResult, VerifyContext } from '../types.js'
import { cachedVendorCertificates, type VendorCertificateSource } from '../vendor-certs.js'
import { appraiseTdx, tdxClaims } from './claims.js'
import { ccelClaims, parseCcel, replayRtmrs } from './ccel.js'
import { parseTdxEvidence } from './evidence.js'
import { verifyPckChain, verifyTdxQuoteSignatures } from './quote-signature.js'

export interface TdxVerifierOptions {
  /** The Intel SGX root CA (self-signed), e.g. from `loadVendorCertificates`. */
  readonly vendor: VendorCertificateSource
  /** The clock certificate validity is checked against (tests inject one). */
  readonly now?: () => Date
}

/** report_data and mr_config_id sizes in the TD report. */
const REPORT_DATA_SIZE = 64
const MR_CONFIG_ID_SIZE = 48

/**
 * The `tdx` verifier: parse → PCK chain to a configured Intel root → QE report → attestation
 * key → quote signature → CC event log replay (when sent) → report_data → mr_config_id, then
 * claims and their appraisal. Without a log the RTMRs are taken as quoted.
 */
export function createTdxVerifier(options: TdxVerifierOptions): Verifier {
  const now = options.now ?? (() => new Date())
  const vendorCerts = cachedVendorCertificates(options.vendor)

  return {
    tee: 'tdx',
    async verify(evidence: unknown, ctx: VerifyContext): Promise<VerifierResult> {
      // === trust material first: an unconfigured verifier refuses everything (ERR_CONFIG_INVALID)
      const { roots } = await vendorCerts()
      // === shape, sizes, header: ERR_ATTEST_EVIDENCE_INVALID
      const { quote, ccEventlog } = parseTdxEvidence(evidence)
      // === PCK ← intermediate ← Intel root (configured)
      const [pck] = verifyPckChain(quote, roots, now())
      // === QE report, attestation-key binding, quote signature
      verifyTdxQuoteSignatures(quote, pck!)
      // === the event log, when sent, must replay to the quoted RTMRs (trustee `replay_and_match`)
      const events = ccEventlog ? parseCcel(ccEventlog) : undefined
      if (events) {
        const replayed = replayRtmrs(events)
        replayed.forEach((r, i) => {
          if (!bytesEqual(r, quote.body.rtmr[i]!)) {
            throw new CofferError(
              'ERR_ATTEST_VERIFICATION_FAILED',
              `TDX event log does not replay to RTMR${i}`,
            )
          }
        })
      }
      // === binding: report_data = the session digest, zero-padded to 64 bytes
      if (!bytesEqual(quote.body.reportData, fitReportData(ctx.reportData, REPORT_DATA_SIZE))) {
        throw new CofferError('ERR_ATTEST_REPORT_DATA_MISMATCH', 'TDX report_data does not bind this session')
      }
      // === binding: mr_config_id = the init-data digest, fitted to 48 bytes
      if (
        ctx.initDataDigest &&
        !bytesEqual(quote.body.mrConfigId, fitReportData(ctx.initDataDigest, MR_CONFIG_ID_SIZE))
      ) {
        throw new CofferError(
          'ERR_ATTEST_REPORT_DATA_MISMATCH',
          'TDX mr_config_id does not bind the init-data',
        )
      }
      const claims = { ...tdxClaims(quote), ...(events ? { ccel: ccelClaims(events) } : {}) }
      return { claims, trust: appraiseTdx(quote, ctx.referenceValues) }
    },
  }
}
