import { createHash } from 'node:crypto'
import { AR4SI } from '../../../lib/attest/trust.js'
import type { ReferenceValues, TrustVector } from '../../../lib/attest/types.js'
import { PCR_COUNT } from '../../../lib/attest/tpm/constants.js'
import { CofferError } from '../../../lib/util/errors.js'

/** Reference value names: `tpm.trusted_ak` and `tpm.pcr0` … `tpm.pcr23`. */
export const TRUSTED_AK_REFERENCE = 'tpm.trusted_ak'
export const pcrReference = (index: number): string => `tpm.pcr${index}`

const HEX_SHA256 = /^[0-9a-fA-F]{64}$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * hardware: APPROVED only when the AK is trusted, by a `tpm.trusted_ak` reference value (the hex
 * sha256 of its canonical DER SPKI, or, as trustee's `trusted_ak` holds it, the base64 DER itself,
 * as sent or canonical) or by the verifier's trustedAkKeys; otherwise CONTRAINDICATED, since anyone can make a valid quote with a
 * software TPM. Whoever lists an AK vouches that it is a restricted signing key (tpm2_createak)
 * of a TPM they trust: only such a key refuses to sign data that starts with TPM_GENERATED_VALUE,
 * so only its signature proves the TPM made the quote.
 */
export function appraiseAk(
  ak: { canonicalDer: Uint8Array; b64: string },
  rv: ReferenceValues,
  configured: ReadonlySet<string>,
): number {
  const fingerprint = createHash('sha256').update(ak.canonicalDer).digest('hex')
  const canonicalB64 = Buffer.from(ak.canonicalDer).toString('base64')
  if (configured.has(fingerprint)) return AR4SI.APPROVED
  for (const v of rv.get(TRUSTED_AK_REFERENCE) ?? []) {
    if (HEX_SHA256.test(v)) {
      if (v.toLowerCase() === fingerprint) return AR4SI.APPROVED
    } else if (BASE64.test(v) && v.length > 0) {
      // Exact, never case-insensitive: among the case variants of a trusted key's base64 an
      // attacker could find a prime "modulus", for which an RSA private key is trivial.
      if (v === ak.b64 || v === canonicalB64) return AR4SI.APPROVED
    } else {
      throw new CofferError(
        'ERR_ATTEST_REFERENCE_VALUES_INVALID',
        `${TRUSTED_AK_REFERENCE} must be a hex sha256 or a base64 DER public key`,
      )
    }
  }
  return AR4SI.CONTRAINDICATED
}

/**
 * executables: APPROVED_EXECUTABLES when every PCR that has reference values matches one of them;
 * UNRECOGNIZED if any does not, including a PCR with reference values that the quote did not
 * select (a measurement the policy asks for but the evidence does not show); UNAVAILABLE when no
 * PCR has reference values.
 */
export function appraisePcrs(pcrs: ReadonlyMap<number, string>, rv: ReferenceValues): number {
  let checked = 0
  let mismatch = false
  for (let i = 0; i < PCR_COUNT; i++) {
    const refs = rv.get(pcrReference(i))
    if (!refs || refs.length === 0) continue
    if (refs.some((r) => !HEX_SHA256.test(r))) {
      throw new CofferError(
        'ERR_ATTEST_REFERENCE_VALUES_INVALID',
        `${pcrReference(i)} must be hex sha256 values`,
      )
    }
    checked++
    const value = pcrs.get(i)
    if (value === undefined || !refs.some((r) => r.toLowerCase() === value)) mismatch = true
  }
  if (checked === 0) return AR4SI.UNAVAILABLE
  return mismatch ? AR4SI.UNRECOGNIZED : AR4SI.APPROVED_EXECUTABLES
}

/** The trust vector of a verified quote. */
export function appraise(
  input: { ak: { canonicalDer: Uint8Array; b64: string }; pcrs: ReadonlyMap<number, string> },
  rv: ReferenceValues,
  configured: ReadonlySet<string>,
): TrustVector {
  return { hardware: appraiseAk(input.ak, rv, configured), executables: appraisePcrs(input.pcrs, rv) }
}
