/** AMD SEV-SNP attestation: the public surface (re-exports only, STYLE §11). */
export { createSnpAttester, SNP_GUEST_DEVICE, SNP_TSM_PROVIDER, type SnpAttesterOptions } from './attester.js'
export { createSnpVerifier, type SnpVerifierOptions } from './verifier.js'
export {
  parseSnpEvidence,
  snpReportToSerde,
  type SnpEvidence,
  type SnpCertEntry,
  type SnpCertType,
} from './evidence.js'
export { parseSnpReport, encodeSnpReport, SNP_REPORT_SIZE, type SnpReport, type SnpTcb } from './report.js'
export { parseSnpCertTable, encodeSnpCertTable } from './cert-table.js'
