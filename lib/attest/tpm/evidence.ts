import { z } from 'zod'
import { CofferError } from '../../util/errors.js'
import { MAX_TPM_AK_PUBLIC_BYTES, MAX_TPM_ATTEST_BYTES, MAX_TPM_SIGNATURE_BYTES } from '../../util/limits.js'
import { PCR_COUNT, SHA256_PCR_SIZE } from './constants.js'

/**
 * The `tpm` TEE's `primary_evidence`, exactly as guest-components' tpm attester serialises it and
 * trustee's verifier (deps/verifier/src/tpm) reads it:
 *
 *   {"ak_public":"<b64 DER SPKI>","tpm_quote":{"message":"<b64 TPMS_ATTEST>",
 *    "signature":"<b64 TPMT_SIGNATURE>","pcrs":["<hex sha256 PCR>",…]}}
 *
 * Base64 is standard with padding. `pcrs` holds the sha256 values of the quoted PCRs in selection
 * order (all 24 by default, so `pcrs[i]` is PCR i); the quote's pcrDigest is the hash of their
 * concatenation. Unknown keys are ignored, as serde does (older attesters also sent `report_data`).
 */
export interface TpmEvidence {
  readonly ak_public: string
  readonly tpm_quote: {
    readonly message: string
    readonly signature: string
    readonly pcrs: readonly string[]
  }
}

/** Standard base64 of at most `maxBytes` bytes (canonical length, `=` padding). */
function base64Of(maxBytes: number) {
  return z
    .string()
    .max(Math.ceil(maxBytes / 3) * 4)
    .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'not standard base64')
    .min(1)
}

const pcrHex = z
  .string()
  .regex(new RegExp(`^[0-9a-fA-F]{${SHA256_PCR_SIZE * 2}}$`), 'not a hex sha256 PCR value')

export const tpmEvidenceSchema = z.object({
  ak_public: base64Of(MAX_TPM_AK_PUBLIC_BYTES),
  tpm_quote: z.object({
    message: base64Of(MAX_TPM_ATTEST_BYTES),
    signature: base64Of(MAX_TPM_SIGNATURE_BYTES),
    pcrs: z.array(pcrHex).min(1).max(PCR_COUNT),
  }),
}) satisfies z.ZodType<TpmEvidence>

/** Decoded evidence: raw bytes, PCR values as bytes in the order sent. */
export interface DecodedTpmEvidence {
  readonly akPublicDer: Uint8Array
  /** The evidence's ak_public string as sent (trustee's `trusted_ak` reference values hold it). */
  readonly akPublicB64: string
  readonly message: Uint8Array
  readonly signature: Uint8Array
  readonly pcrValues: readonly Uint8Array[]
}

/** Validates untrusted evidence JSON; any mismatch is ERR_ATTEST_EVIDENCE_INVALID. */
export function decodeTpmEvidence(evidence: unknown): DecodedTpmEvidence {
  const parsed = tpmEvidenceSchema.safeParse(evidence)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'
    throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', `tpm evidence ${where}`)
  }
  const e = parsed.data
  return {
    akPublicDer: Buffer.from(e.ak_public, 'base64'),
    akPublicB64: e.ak_public,
    message: Buffer.from(e.tpm_quote.message, 'base64'),
    signature: Buffer.from(e.tpm_quote.signature, 'base64'),
    pcrValues: e.tpm_quote.pcrs.map((h) => Buffer.from(h, 'hex')),
  }
}
