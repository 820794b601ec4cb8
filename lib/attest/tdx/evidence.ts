import { z } from 'zod'
import { CofferError } from '../../util/errors.js'
import { MAX_TDX_QUOTE_BYTES, parseTdxQuote, type TdxQuote } from './quote.js'

/**
 * The `tdx` evidence JSON of trustee (deps/verifier/src/tdx `TdxEvidence`) and guest-components:
 * `{"cc_eventlog": "<base64 CCEL>" | null, "quote": "<base64 TD quote>"}`.
 */

/** A CCEL event log is tens of KiB; 1 MiB leaves room without inviting abuse. */
export const MAX_TDX_EVENTLOG_BYTES = 1024 * 1024

const b64 = (maxBytes: number) =>
  z
    .string()
    .max(Math.ceil(maxBytes / 3) * 4)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not standard base64')

const schema = z.object({
  cc_eventlog: b64(MAX_TDX_EVENTLOG_BYTES).nullish(),
  quote: b64(MAX_TDX_QUOTE_BYTES),
})

export interface TdxEvidence {
  readonly quote: TdxQuote
  /** The raw CCEL, when sent (replayed by the verifier, see ccel.ts). */
  readonly ccEventlog?: Uint8Array
}

/** Validates untrusted `tdx` evidence and parses its quote (ERR_ATTEST_EVIDENCE_INVALID). */
export function parseTdxEvidence(evidence: unknown): TdxEvidence {
  const parsed = schema.safeParse(evidence)
  if (!parsed.success) {
    throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', 'TDX evidence does not have the expected shape', {
      cause: parsed.error,
    })
  }
  const quote = parseTdxQuote(Buffer.from(parsed.data.quote, 'base64'))
  const log = parsed.data.cc_eventlog
  return { quote, ...(log ? { ccEventlog: Buffer.from(log, 'base64') } : {}) }
}
