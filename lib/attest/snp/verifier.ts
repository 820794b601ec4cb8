import { CofferError } from '../../util/errors.js'
import { fitReportData } from '../report-data.js'
import { bytesEqual } from '../reference-check.js'
import type { Verifier, VerifierResult, VerifyContext } from '../types.js'
import { cachedVendorCertificates, type VendorCertificateSource } from '../vendor-certs.js'
import { appraiseSnp, snpClaims } from './claims.js'
import { checkEndorsedTcb, verifySnpEndorsement } from './endorsement.js'
import { parseSnpEvidence } from './evidence.js'
import { SNP_FIELD_SIZES } from './report.js'
import { verifySnpReportSignature } from './report-signature.js'

export interface SnpVerifierOptions {
  /** AMD ARKs (self-signed) and ASK/ASVK intermediates, e.g. from `loadVendorCertificates`. */
  readonly vendor: VendorCertificateSource
  /** The clock certificate validity is checked against (tests inject one). */
  readonly now?: () => Date
}

/**
 * The `snp` verifier. `verify` reads as trustee's checklist (deps/verifier/src/snp `evaluate`):
 * parse → endorsement chain to a configured ARK → report signature → TCB endorsed by the VEK →
 * VMPL 0 → report_data → host_data, then claims and their appraisal.
 */
export function createSnpVerifier(options: SnpVerifierOptions): Verifier {
  const now = options.now ?? (() => new Date())
  const vendorCerts = cachedVendorCertificates(options.vendor)

  return {
    tee: 'snp',
    async verify(evidence: unknown, ctx: VerifyContext): Promise<VerifierResult> {
      // === trust material first: an unconfigured verifier refuses everything (ERR_CONFIG_INVALID)
      const vendor = await vendorCerts()
      // === shape, sizes, version: ERR_ATTEST_EVIDENCE_INVALID
      const { report, reportBytes, certChain } = parseSnpEvidence(evidence)
      // === VEK ← ASK ← ARK, the ARK one of the configured roots
      const endorsement = verifySnpEndorsement(certChain, vendor, now())
      // === the VEK signed exactly these bytes
      verifySnpReportSignature(reportBytes, report, endorsement.vek.publicKey)
      // === the VEK was issued for this chip and TCB
      checkEndorsedTcb(endorsement, report)
      // === only the guest's most privileged level speaks for the guest (trustee: "VMPL Check")
      if (report.vmpl !== 0) {
        throw new CofferError(
          'ERR_ATTEST_VERIFICATION_FAILED',
          `SNP report comes from VMPL ${report.vmpl}, not 0`,
        )
      }
      // === binding: report_data = the session digest, zero-padded to 64 bytes
      if (!bytesEqual(report.reportData, fitReportData(ctx.reportData, SNP_FIELD_SIZES.reportData))) {
        throw new CofferError('ERR_ATTEST_REPORT_DATA_MISMATCH', 'SNP report_data does not bind this session')
      }
      // === binding: host_data = the init-data digest, fitted to 32 bytes
      if (
        ctx.initDataDigest &&
        !bytesEqual(report.hostData, fitReportData(ctx.initDataDigest, SNP_FIELD_SIZES.hostData))
      ) {
        throw new CofferError('ERR_ATTEST_REPORT_DATA_MISMATCH', 'SNP host_data does not bind the init-data')
      }
      return { claims: snpClaims(report), trust: appraiseSnp(report, ctx.referenceValues) }
    },
  }
}
