import { CofferError } from '../../util/errors.js'
import { fitReportData } from '../report-data.js'
import { bytesEqual } from '../reference-check.js'
import type { Verifier, VerifierResult, VerifyContext } from '../types.js'
import type { VendorCertificates } from '../vendor-certs.js'
import { appraiseTdx, tdxClaims } from './claims.js'
import { parseTdxEvidence } from './evidence.js'
import { verifyPckChain, verifyTdxQuoteSignatures } from './quote-signature.js'

export interface TdxVerifierOptions {
  /** The Intel SGX root CA (self-signed), e.g. from `loadVendorCertificates`. */
  readonly vendor: VendorCertificates | (() => Promise<VendorCertificates>)
  /** The clock certificate validity is checked against (tests inject one). */
  readonly now?: () => Date
}

/** report_data and mr_config_id sizes in the TD report. */
const REPORT_DATA_SIZE = 64
const MR_CONFIG_ID_SIZE = 48

/**
 * The `tdx` verifier: parse → PCK chain to a configured Intel root → QE report → attestation
 * key → quote signature → report_data → mr_config_id, then claims and their appraisal.
 * The CCEL event log, when sent, is not replayed against the RTMRs.
 */
export function createTdxVerifier(options: TdxVerifierOptions): Verifier {
  const now = options.now ?? (() => new Date())
  let vendor: Promise<VendorCertificates> | undefined
  const vendorCerts = () =>
    (vendor ??= typeof options.vendor === 'function' ? options.vendor() : Promise.resolve(options.vendor))

  return {
    tee: 'tdx',
    async verify(evidence: unknown, ctx: VerifyContext): Promise<VerifierResult> {
      // === shape, sizes, header: ERR_ATTEST_EVIDENCE_INVALID
      const { quote } = parseTdxEvidence(evidence)
      // === PCK ← intermediate ← Intel root (configured)
      const [pck] = verifyPckChain(quote, (await vendorCerts()).roots, now())
      // === QE report, attestation-key binding, quote signature
      verifyTdxQuoteSignatures(quote, pck!)
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
      return { claims: tdxClaims(quote), trust: appraiseTdx(quote, ctx.referenceValues) }
    },
  }
}
