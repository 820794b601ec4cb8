/** Intel TDX attestation: the public surface (re-exports only, STYLE §11). */
export { createTdxAttester, TDX_GUEST_DEVICE, TDX_TSM_PROVIDER, type TdxAttesterOptions } from './attester.js'
export { createTdxVerifier, type TdxVerifierOptions } from './verifier.js'
export { parseTdxEvidence, type TdxEvidence } from './evidence.js'
export { parseTdxQuote, MAX_TDX_QUOTE_BYTES, type TdxQuote, type TdReportBody } from './quote.js'
