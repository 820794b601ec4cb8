import type { TrustVector } from './types.js'

/** EAR appraisal status, best to worst. */
export type EarStatus = 'none' | 'affirming' | 'warning' | 'contraindicated'

/** AR4SI values coffer's verifiers use. */
export const AR4SI = {
  NO_CLAIM: 0,
  /** hardware / configuration / instance-identity approved */
  APPROVED: 2,
  /** executables: approved boot and runtime */
  APPROVED_EXECUTABLES: 3,
  /** measurements seen but not among the reference values */
  UNRECOGNIZED: 33,
  /** no reference value to compare with */
  UNAVAILABLE: 36,
  /** hardware or signature not trusted, e.g. the sample TEE or an unknown TPM AK */
  CONTRAINDICATED: 97,
} as const

const ORDER: readonly EarStatus[] = ['none', 'affirming', 'warning', 'contraindicated']

/** The ear crate's `TrustClaim::tier`. */
export function tierOf(value: number): EarStatus {
  if (value >= -1 && value <= 1) return 'none'
  if (value >= -32 && value <= 31) return 'affirming'
  if (value >= -96 && value <= 95) return 'warning'
  return 'contraindicated'
}

/** The worst tier over all claims; `none` when the vector is empty. */
export function earStatus(vector: TrustVector): EarStatus {
  let worst: EarStatus = 'none'
  for (const v of Object.values(vector)) {
    if (typeof v !== 'number') continue
    const t = tierOf(v)
    if (ORDER.indexOf(t) > ORDER.indexOf(worst)) worst = t
  }
  return worst
}
