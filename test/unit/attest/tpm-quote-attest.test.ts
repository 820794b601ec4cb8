import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseQuoteAttest } from '../../../lib/attest/tpm/quote-attest.js'
import { isCofferError } from '../../../lib/util/errors.js'
import { marshalQuoteAttest, type QuoteFields } from '../../helpers/tpm-quote.js'

const base: QuoteFields = {
  extraData: Buffer.alloc(32, 0x5a),
  pcrDigest: createHash('sha256').update('pcrs').digest(),
}

function invalid(bytes: Uint8Array, why: RegExp): void {
  let err: unknown
  try {
    parseQuoteAttest(bytes)
  } catch (e) {
    err = e
  }
  expect(isCofferError(err, 'ERR_ATTEST_EVIDENCE_INVALID')).toBe(true)
  expect((err as Error).message).toMatch(why)
}

describe('parseQuoteAttest', () => {
  it('reads every field of a TPMS_ATTEST quote', () => {
    const q = parseQuoteAttest(
      marshalQuoteAttest({
        ...base,
        clock: 0x0102030405060708n,
        resetCount: 7,
        restartCount: 9,
        safe: 0,
        firmwareVersion: 0xfedcba9876543210n,
        selections: [{ hashAlg: 0x000b, pcrs: [0, 7, 8, 23] }],
      }),
    )
    expect(Buffer.from(q.extraData)).toEqual(Buffer.alloc(32, 0x5a))
    expect(q.qualifiedSigner).toHaveLength(34)
    expect(q.clockInfo).toEqual({ clock: 0x0102030405060708n, resetCount: 7, restartCount: 9, safe: false })
    expect(q.firmwareVersion).toBe(0xfedcba9876543210n)
    expect(q.pcrSelections).toEqual([{ hashAlg: 0x000b, pcrs: [0, 7, 8, 23] }])
    expect(Buffer.from(q.pcrDigest)).toEqual(Buffer.from(base.pcrDigest))
  })

  it('reads several banks and an empty extraData', () => {
    const q = parseQuoteAttest(
      marshalQuoteAttest({
        ...base,
        extraData: new Uint8Array(0),
        selections: [
          { hashAlg: 0x0004, pcrs: [1] },
          { hashAlg: 0x000b, pcrs: [2, 3] },
        ],
      }),
    )
    expect(q.extraData).toHaveLength(0)
    expect(q.pcrSelections.map((s) => s.pcrs)).toEqual([[1], [2, 3]])
  })

  it('rejects a wrong magic, a wrong type and trailing bytes', () => {
    invalid(marshalQuoteAttest({ ...base, magic: 0xff544348 }), /magic/)
    invalid(marshalQuoteAttest({ ...base, type: 0x8014 }), /TPM_ST_ATTEST_QUOTE/) // a certify, not a quote
    invalid(Buffer.concat([marshalQuoteAttest(base), Buffer.from([0])]), /trailing/)
  })

  it('rejects sizes past their type’s maximum and values outside their domain', () => {
    invalid(marshalQuoteAttest({ ...base, extraData: Buffer.alloc(67) }), /extraData is 67 bytes/)
    invalid(marshalQuoteAttest({ ...base, qualifiedSigner: Buffer.alloc(67) }), /qualifiedSigner/)
    invalid(marshalQuoteAttest({ ...base, pcrDigest: Buffer.alloc(65) }), /pcrDigest/)
    invalid(marshalQuoteAttest({ ...base, safe: 2 }), /safe/)
    invalid(
      marshalQuoteAttest({ ...base, selections: [{ hashAlg: 0x000b, pcrs: [24], sizeofSelect: 4 }] }),
      /PCR 24/,
    )
    invalid(
      marshalQuoteAttest({ ...base, selections: [{ hashAlg: 0x000b, pcrs: [], sizeofSelect: 5 }] }),
      /sizeofSelect/,
    )
    const nine = Array.from({ length: 9 }, () => ({ hashAlg: 0x000b, pcrs: [0] }))
    invalid(marshalQuoteAttest({ ...base, selections: nine }), /count/)
  })

  it('rejects every truncation', () => {
    const full = marshalQuoteAttest(base)
    for (let n = 0; n < full.length; n++) invalid(full.subarray(0, n), /truncated/)
  })

  it('random bytes, or random bytes after a valid header, are ERR_ATTEST_EVIDENCE_INVALID, never a crash', () => {
    const header = marshalQuoteAttest(base).subarray(0, 6)
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 300 }), (withHeader, tail) => {
        const bytes = withHeader ? Buffer.concat([header, tail]) : tail
        try {
          parseQuoteAttest(bytes)
        } catch (e) {
          expect(isCofferError(e, 'ERR_ATTEST_EVIDENCE_INVALID')).toBe(true)
          return
        }
        // Only a tail behind a valid header could ever parse (and then it is a well-formed quote).
        expect(withHeader).toBe(true)
      }),
      { numRuns: 2000 },
    )
  })
})
