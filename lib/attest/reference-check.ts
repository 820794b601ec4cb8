import { timingSafeEqual } from 'node:crypto'
import { CofferError } from '../util/errors.js'
import type { ReferenceValues } from './types.js'

/**
 * Small comparisons the hardware-TEE verifiers (snp, tdx) share: fixed-size byte fields against
 * the bytes the KBS expects, and measured values against reference values.
 */

/** Equal length and content; constant-time (the values are public, but it costs nothing). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

export type ReferenceMatch = 'match' | 'mismatch' | 'unset'

/**
 * Whether `actualHex` is among the reference values named `name`. Reference digests are hex;
 * case and a `0x` prefix are ignored. An empty list counts as unset.
 */
export function matchReference(refs: ReferenceValues, name: string, actualHex: string): ReferenceMatch {
  const values = refs.get(name)
  if (!values || values.length === 0) return 'unset'
  const want = actualHex.toLowerCase()
  return values.some((v) => v.toLowerCase().replace(/^0x/, '') === want) ? 'match' : 'mismatch'
}

/**
 * A single non-negative integer reference value (a minimum SVN), or undefined when unset.
 * Anything else is ERR_ATTEST_REFERENCE_VALUES_INVALID: a typo must not silently disable a check.
 */
export function integerReference(refs: ReferenceValues, name: string): number | undefined {
  const values = refs.get(name)
  if (!values || values.length === 0) return undefined
  if (values.length !== 1 || !/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(values[0]!.trim())) {
    throw new CofferError(
      'ERR_ATTEST_REFERENCE_VALUES_INVALID',
      `reference value ${name} must be a single non-negative integer`,
    )
  }
  return Number(values[0]!.trim())
}

/** Lower-case hex of bytes, as every verifier claim spells binary values. */
export const hex = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
