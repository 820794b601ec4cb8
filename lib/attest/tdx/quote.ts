import { CofferError } from '../../util/errors.js'

/**
 * Intel TDX DCAP quotes, versions 4 and 5 (Intel "TDX DCAP Quoting Library API", appendix
 * "Quote Format"; trustee deps/verifier/src/intel_dcap/quote.rs). Little-endian throughout.
 *
 *   v4: header(48) ‖ TD report body(584) ‖ u32 sig_len ‖ signature data
 *   v5: header(48) ‖ u16 body type ‖ u32 body size ‖ body(584 | 648) ‖ u32 sig_len ‖ signature data
 *
 * The quote signature covers everything before `sig_len`. Signature data (ECDSA-P256):
 *   quote sig r‖s (64) ‖ attestation key x‖y (64) ‖ u16 cert type 6 ‖ u32 size ‖
 *   QE report (384) ‖ QE report sig (64) ‖ u16 auth size ‖ QE auth data ‖
 *   u16 cert type 5 ‖ u32 size ‖ PCK cert chain (PEM: PCK, intermediate CA, root CA)
 */

/** A real quote with its PEM chain is ~5 KiB; anything near this is not a quote. */
export const MAX_TDX_QUOTE_BYTES = 64 * 1024

export const TDX_HEADER_SIZE = 48
export const TDX_ATT_KEY_TYPE_ECDSA_P256 = 2
export const TDX_TEE_TYPE = 0x81
/** v5 body types: TDX 1.0 and TDX 1.5 TD reports. */
export const TDX_BODY_TYPE_10 = 2
export const TDX_BODY_TYPE_15 = 3
export const TDX_BODY_SIZE_10 = 584
export const TDX_BODY_SIZE_15 = 648
export const SGX_REPORT_BODY_SIZE = 384
/** Offset of report_data inside an SGX report body (the QE report). */
export const SGX_REPORT_DATA_OFFSET = 320
const CERT_TYPE_QE_REPORT = 6
const CERT_TYPE_PCK_CHAIN = 5

/** TD report body field offsets (same for TDX 1.0 and 1.5; 1.5 appends two fields). */
export const TD_BODY_OFFSETS = {
  teeTcbSvn: 0,
  mrSeam: 16,
  mrSignerSeam: 64,
  seamAttributes: 112,
  tdAttributes: 120,
  xfam: 128,
  mrTd: 136,
  mrConfigId: 184,
  mrOwner: 232,
  mrOwnerConfig: 280,
  rtmr0: 328,
  rtmr1: 376,
  rtmr2: 424,
  rtmr3: 472,
  reportData: 520,
  teeTcbSvn2: 584,
  mrServiceTd: 600,
} as const

/** TD_ATTRIBUTES bit 0: the TD is debuggable (its state is readable by the host). */
export const TD_ATTRIBUTES_DEBUG = 1n

export interface TdReportBody {
  readonly teeTcbSvn: Uint8Array
  readonly mrSeam: Uint8Array
  readonly mrSignerSeam: Uint8Array
  readonly seamAttributes: Uint8Array
  readonly tdAttributes: Uint8Array
  readonly xfam: Uint8Array
  readonly mrTd: Uint8Array
  readonly mrConfigId: Uint8Array
  readonly mrOwner: Uint8Array
  readonly mrOwnerConfig: Uint8Array
  readonly rtmr: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array]
  readonly reportData: Uint8Array
  /** TDX 1.5 bodies only. */
  readonly teeTcbSvn2?: Uint8Array
  readonly mrServiceTd?: Uint8Array
}

export interface TdxQuote {
  readonly version: 4 | 5
  readonly header: {
    readonly attKeyType: number
    readonly teeType: number
    readonly qeVendorId: Uint8Array
    readonly userData: Uint8Array
  }
  /** v5 only. */
  readonly bodyType?: number
  readonly body: TdReportBody
  /** The bytes the attestation key signed: header through body. */
  readonly signedBytes: Uint8Array
  /** r‖s, big-endian (P1363). */
  readonly quoteSignature: Uint8Array
  /** Uncompressed P-256 point without its 0x04 prefix: x‖y. */
  readonly attestationKey: Uint8Array
  readonly qeReport: Uint8Array
  readonly qeReportSignature: Uint8Array
  readonly qeAuthData: Uint8Array
  /** PEM text of the PCK certificate chain, leaf first. */
  readonly pckChainPem: string
}

function invalid(why: string): never {
  throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', `TDX quote: ${why}`)
}

/** A bounds-checked little-endian reader over one buffer. */
class Cursor {
  private readonly dv: DataView
  constructor(
    private readonly b: Uint8Array,
    public off: number,
    private readonly end: number,
  ) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  }
  private need(n: number, what: string): number {
    const at = this.off
    if (n < 0 || at + n > this.end) invalid(`${what} runs past the end of the quote`)
    this.off += n
    return at
  }
  u16(what: string): number {
    return this.dv.getUint16(this.need(2, what), true)
  }
  u32(what: string): number {
    return this.dv.getUint32(this.need(4, what), true)
  }
  bytes(n: number, what: string): Uint8Array {
    const at = this.need(n, what)
    return this.b.slice(at, at + n)
  }
}

function parseBody(b: Uint8Array, off: number, size: number): TdReportBody {
  const O = TD_BODY_OFFSETS
  const f = (at: number, len: number) => b.slice(off + at, off + at + len)
  return {
    teeTcbSvn: f(O.teeTcbSvn, 16),
    mrSeam: f(O.mrSeam, 48),
    mrSignerSeam: f(O.mrSignerSeam, 48),
    seamAttributes: f(O.seamAttributes, 8),
    tdAttributes: f(O.tdAttributes, 8),
    xfam: f(O.xfam, 8),
    mrTd: f(O.mrTd, 48),
    mrConfigId: f(O.mrConfigId, 48),
    mrOwner: f(O.mrOwner, 48),
    mrOwnerConfig: f(O.mrOwnerConfig, 48),
    rtmr: [f(O.rtmr0, 48), f(O.rtmr1, 48), f(O.rtmr2, 48), f(O.rtmr3, 48)],
    reportData: f(O.reportData, 64),
    ...(size === TDX_BODY_SIZE_15
      ? { teeTcbSvn2: f(O.teeTcbSvn2, 16), mrServiceTd: f(O.mrServiceTd, 48) }
      : {}),
  }
}

/**
 * Parses a TD quote v4 or v5 and checks its header (ECDSA-P256 attestation key, TDX tee type)
 * and that every length field stays inside the quote. Trailing bytes after the signature data are
 * ignored, as DCAP does. Verifies no signature (see quote-signature.ts).
 */
export function parseTdxQuote(q: Uint8Array): TdxQuote {
  if (q.length > MAX_TDX_QUOTE_BYTES) invalid(`${q.length} bytes is larger than ${MAX_TDX_QUOTE_BYTES}`)
  const c = new Cursor(q, 0, q.length)
  const version = c.u16('header')
  const attKeyType = c.u16('header')
  const teeType = c.u32('header')
  c.bytes(4, 'header') // reserved
  const qeVendorId = c.bytes(16, 'header')
  const userData = c.bytes(20, 'header')
  if (version !== 4 && version !== 5) invalid(`version ${version} is not supported (4, 5)`)
  if (attKeyType !== TDX_ATT_KEY_TYPE_ECDSA_P256)
    invalid(`attestation key type ${attKeyType} is not ECDSA-P256`)
  if (teeType !== TDX_TEE_TYPE) invalid(`tee type 0x${teeType.toString(16)} is not TDX (0x81)`)

  let bodyType: number | undefined
  let bodySize = TDX_BODY_SIZE_10
  if (version === 5) {
    bodyType = c.u16('body type')
    const declared = c.u32('body size')
    if (bodyType === TDX_BODY_TYPE_10) bodySize = TDX_BODY_SIZE_10
    else if (bodyType === TDX_BODY_TYPE_15) bodySize = TDX_BODY_SIZE_15
    else invalid(`v5 body type ${bodyType} is not a TD report (2, 3)`)
    if (declared !== bodySize) invalid(`v5 body size ${declared} does not match its type (${bodySize})`)
  }
  const bodyOff = c.off
  c.bytes(bodySize, 'TD report body')
  const body = parseBody(q, bodyOff, bodySize)
  const signedBytes = q.slice(0, c.off)

  const sigLen = c.u32('signature data length')
  const s = new Cursor(q, c.off, c.off + sigLen)
  if (c.off + sigLen > q.length) invalid('signature data runs past the end of the quote')
  const quoteSignature = s.bytes(64, 'quote signature')
  const attestationKey = s.bytes(64, 'attestation key')
  if (s.u16('certification data type') !== CERT_TYPE_QE_REPORT) {
    invalid('certification data is not a QE report (type 6)')
  }
  const qeCertSize = s.u32('QE certification data size')
  const qe = new Cursor(q, s.off, s.off + qeCertSize)
  if (s.off + qeCertSize > c.off + sigLen) invalid('QE certification data runs past the signature data')
  const qeReport = qe.bytes(SGX_REPORT_BODY_SIZE, 'QE report')
  const qeReportSignature = qe.bytes(64, 'QE report signature')
  const qeAuthData = qe.bytes(qe.u16('QE authentication data size'), 'QE authentication data')
  if (qe.u16('PCK certification data type') !== CERT_TYPE_PCK_CHAIN) {
    invalid('QE certification data does not carry a PCK certificate chain (type 5)')
  }
  const pck = qe.bytes(qe.u32('PCK certificate chain size'), 'PCK certificate chain')
  // DCAP pads the chain with a NUL; PEM is ASCII, so latin1 decoding cannot fail.
  const pckChainPem = Buffer.from(pck).toString('latin1').replace(/\0+$/, '')

  return {
    version,
    header: { attKeyType, teeType, qeVendorId, userData },
    ...(bodyType !== undefined ? { bodyType } : {}),
    body,
    signedBytes,
    quoteSignature,
    attestationKey,
    qeReport,
    qeReportSignature,
    qeAuthData,
    pckChainPem,
  }
}
