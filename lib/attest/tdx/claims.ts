import { hex, matchReference, type ReferenceMatch } from '../reference-check.js'
import { AR4SI } from '../trust.js'
import type { ReferenceValues, TrustVector } from '../types.js'
import { TD_ATTRIBUTES_DEBUG, type TdxQuote } from './quote.js'

/**
 * Claims from a verified TD quote and their appraisal. The `quote.header` / `quote.body` maps
 * use trustee's names and hex encoding (deps/verifier/src/tdx/claims.rs `generate_parsed_claim`),
 * so trustee attestation policies (`input.tdx.quote.body.mr_td`) read coffer's tokens.
 */

const le16 = (n: number) => hex(Uint8Array.of(n & 0xff, n >> 8))
const le32 = (n: number) => hex(Uint8Array.of(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24))

/** TD_ATTRIBUTES as the u64 it is. */
export function tdAttributes(q: TdxQuote): bigint {
  return new DataView(q.body.tdAttributes.buffer, q.body.tdAttributes.byteOffset, 8).getBigUint64(0, true)
}

export function tdxClaims(q: TdxQuote): Record<string, unknown> {
  const b = q.body
  const body: Record<string, string> = {
    tcb_svn: hex(b.teeTcbSvn),
    mr_seam: hex(b.mrSeam),
    mrsigner_seam: hex(b.mrSignerSeam),
    seam_attributes: hex(b.seamAttributes),
    td_attributes: hex(b.tdAttributes),
    xfam: hex(b.xfam),
    mr_td: hex(b.mrTd),
    mr_config_id: hex(b.mrConfigId),
    mr_owner: hex(b.mrOwner),
    mr_owner_config: hex(b.mrOwnerConfig),
    rtmr_0: hex(b.rtmr[0]),
    rtmr_1: hex(b.rtmr[1]),
    rtmr_2: hex(b.rtmr[2]),
    rtmr_3: hex(b.rtmr[3]),
    report_data: hex(b.reportData),
    ...(b.teeTcbSvn2 && b.mrServiceTd
      ? { tee_tcb_svn2: hex(b.teeTcbSvn2), mr_servicetd: hex(b.mrServiceTd) }
      : {}),
  }
  const header = {
    version: le16(q.version),
    att_key_type: le16(q.header.attKeyType),
    tee_type: le32(q.header.teeType),
    vendor_id: hex(q.header.qeVendorId),
    user_data: hex(q.header.userData),
  }
  return {
    quote: { header, body, ...(q.bodyType !== undefined ? { type: le16(q.bodyType) } : {}) },
    debug: (tdAttributes(q) & TD_ATTRIBUTES_DEBUG) !== 0n,
    report_data: body.report_data,
    init_data: body.mr_config_id,
  }
}

/** The worst of several reference comparisons: any mismatch wins, then any match. */
function combine(results: readonly ReferenceMatch[]): ReferenceMatch {
  if (results.includes('mismatch')) return 'mismatch'
  return results.includes('match') ? 'match' : 'unset'
}

/**
 * Appraisal against reference values:
 * - hardware: approved (the chain to the Intel root held; TCB status is not evaluated);
 * - executables: every set one of `tdx.mr_td`, `tdx.rtmr0..3` matched → approved, any differs →
 *   unrecognized, none set → unavailable;
 * - configuration: a debuggable TD is contraindicated whatever else holds; otherwise
 *   `tdx.mr_config_id` differing → unrecognized, else approved.
 */
export function appraiseTdx(q: TdxQuote, refs: ReferenceValues): TrustVector {
  const b = q.body
  const exec = combine([
    matchReference(refs, 'tdx.mr_td', hex(b.mrTd)),
    ...b.rtmr.map((r, i) => matchReference(refs, `tdx.rtmr${i}`, hex(r))),
  ])
  const executables =
    exec === 'match'
      ? AR4SI.APPROVED_EXECUTABLES
      : exec === 'mismatch'
        ? AR4SI.UNRECOGNIZED
        : AR4SI.UNAVAILABLE
  let configuration: number = AR4SI.APPROVED
  if ((tdAttributes(q) & TD_ATTRIBUTES_DEBUG) !== 0n) configuration = AR4SI.CONTRAINDICATED
  else if (matchReference(refs, 'tdx.mr_config_id', hex(b.mrConfigId)) === 'mismatch') {
    configuration = AR4SI.UNRECOGNIZED
  }
  return { hardware: AR4SI.APPROVED, executables, configuration }
}
