/**
 * Synthetic SEV-SNP reports and TDX quotes, signed by test keys under test vendor roots, laid out
 * exactly as the real ones (lib/attest/snp/report.ts, lib/attest/tdx/quote.ts), so the verifiers
 * run their full checklist on them.
 */
import { createHash, randomBytes, sign, type KeyObject } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { snpReportToSerde } from '../../lib/attest/snp/evidence.js'
import {
  encodeSnpReport,
  parseSnpReport,
  SNP_SIGNED_SIZE,
  type SnpReport,
  type SnpTcb,
} from '../../lib/attest/snp/report.js'
import { p1363ToSnpSignature } from '../../lib/attest/snp/report-signature.js'
import {
  derInteger,
  derOctetString,
  makeTestCert,
  testKey,
  type TestCert,
  type TestKeyPair,
} from './test-ca.js'

// ==================================================================== SEV-SNP

export const GENOA = { cpuidFamId: 0x19, cpuidModId: 0x11 } as const
export const TURIN = { cpuidFamId: 0x1a, cpuidModId: 0x02 } as const
export const DEFAULT_TCB: SnpTcb = { fmc: null, bootloader: 10, tee: 0, snp: 23, microcode: 25 }

/** A temp directory for vendor files; `cleanup()` removes it. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

export interface VcekOptions {
  readonly tcb?: SnpTcb
  readonly chipId?: Uint8Array
  readonly kind?: 'VCEK' | 'VLEK'
  readonly notBefore?: Date
  readonly notAfter?: Date
  readonly keyType?: 'p384' | 'p256'
}

/** A VCEK/VLEK issued by `ask`, with AMD's SPL and hwID extensions for `tcb` and `chipId`. */
export function makeVcek(ask: TestCert, o: VcekOptions = {}): TestCert {
  const t = o.tcb ?? DEFAULT_TCB
  const ext: Record<string, Uint8Array> = {
    '1.3.6.1.4.1.3704.1.3.1': derInteger(t.bootloader),
    '1.3.6.1.4.1.3704.1.3.2': derInteger(t.tee),
    '1.3.6.1.4.1.3704.1.3.3': derInteger(t.snp),
    '1.3.6.1.4.1.3704.1.3.8': derInteger(t.microcode),
  }
  if (t.fmc !== null) ext['1.3.6.1.4.1.3704.1.3.9'] = derInteger(t.fmc)
  if ((o.kind ?? 'VCEK') === 'VCEK' && o.chipId) ext['1.3.6.1.4.1.3704.1.4'] = derOctetString(o.chipId)
  return makeTestCert({
    subject: o.kind === 'VLEK' ? 'SEV-VLEK' : 'SEV-VCEK',
    issuer: ask,
    keyType: o.keyType ?? 'p384',
    extensions: ext,
    ...(o.notBefore ? { notBefore: o.notBefore } : {}),
    ...(o.notAfter ? { notAfter: o.notAfter } : {}),
  })
}

export interface SnpPki {
  readonly ark: TestCert
  readonly ask: TestCert
  readonly vcek: TestCert
  readonly chipId: Uint8Array
  /** ASK + ARK, as AMD's `cert_chain` files hold them. */
  readonly bundlePem: string
}

/** ARK (RSA, self-signed) → ASK (RSA) → VCEK (P-384), all RSA-PSS/SHA-384 as AMD signs. */
export function makeSnpPki(name = 'Genoa', o: VcekOptions = {}): SnpPki {
  const ark = makeTestCert({ subject: `ARK-${name}`, keyType: 'rsa', ca: true })
  const ask = makeTestCert({ subject: `SEV-${name}`, keyType: 'rsa', ca: true, issuer: ark })
  const chipId = o.chipId ?? new Uint8Array(randomBytes(64))
  return { ark, ask, vcek: makeVcek(ask, { ...o, chipId }), chipId, bundlePem: ask.pem + ark.pem }
}

/** A plausible unsigned report; override any field. */
export function snpReport(o: Partial<SnpReport> = {}): SnpReport {
  const z = (n: number) => new Uint8Array(n)
  return {
    version: 3,
    guestSvn: 0,
    policy: 0x30000n, // SMT allowed + the reserved-must-be-one bit 17
    familyId: z(16),
    imageId: z(16),
    vmpl: 0,
    sigAlgo: 1,
    currentTcb: DEFAULT_TCB,
    platInfo: 0x25n,
    keyInfo: 0,
    reportData: z(64),
    measurement: new Uint8Array(48).fill(0x6a),
    hostData: z(32),
    idKeyDigest: z(48),
    authorKeyDigest: z(48),
    reportId: new Uint8Array(32).fill(0xb3),
    reportIdMa: new Uint8Array(32).fill(0xff),
    reportedTcb: DEFAULT_TCB,
    ...GENOA,
    cpuidStep: 2,
    chipId: z(64),
    committedTcb: DEFAULT_TCB,
    current: { major: 1, minor: 55, build: 40 },
    committed: { major: 1, minor: 55, build: 40 },
    launchTcb: DEFAULT_TCB,
    launchMitVector: 0n,
    currentMitVector: 0n,
    signature: { r: z(72), s: z(72) },
    ...o,
  }
}

/** Signs a report with `key` (ECDSA P-384/SHA-384 over bytes 0..0x29F); returns its 1184 bytes. */
export function signSnpReport(report: SnpReport, key: KeyObject): Uint8Array {
  const unsigned = encodeSnpReport(report)
  const sig = sign('sha384', unsigned.subarray(0, SNP_SIGNED_SIZE), { key, dsaEncoding: 'ieee-p1363' })
  return encodeSnpReport({ ...report, signature: p1363ToSnpSignature(sig) })
}

export type SnpChainEntry = { cert_type: string; data: number[] }

/** A cert_chain list in trustee's JSON form. */
export function snpCertChain(entries: readonly [string, TestCert][]): SnpChainEntry[] {
  return entries.map(([t, c]) => ({ cert_type: t, data: Array.from(c.der) }))
}

/** Evidence as guest-components sends it: serde JSON report, or base64 with `raw`. */
export function snpEvidence(
  reportBytes: Uint8Array,
  chain: SnpChainEntry[] | null,
  o: { raw?: boolean; parsed?: SnpReport } = {},
): Record<string, unknown> {
  const report = o.raw
    ? Buffer.from(reportBytes).toString('base64')
    : snpReportToSerde(o.parsed ?? parseSnpReport(reportBytes))
  return { attestation_report: report, cert_chain: chain }
}

// ==================================================================== TDX

export interface TdxPki {
  readonly root: TestCert
  readonly intermediate: TestCert
  readonly pck: TestCert
  /** PCK ‖ intermediate ‖ root, as DCAP puts it in the quote. */
  readonly chainPem: string
}

/** "Intel SGX Root CA" → "Intel SGX PCK Platform CA" → "Intel SGX PCK Certificate", all P-256. */
export function makeTdxPki(o: { pckNotAfter?: Date } = {}): TdxPki {
  const root = makeTestCert({ subject: 'Intel SGX Root CA', keyType: 'p256', ca: true })
  const intermediate = makeTestCert({
    subject: 'Intel SGX PCK Platform CA',
    keyType: 'p256',
    ca: true,
    issuer: root,
  })
  const pck = makeTestCert({
    subject: 'Intel SGX PCK Certificate',
    keyType: 'p256',
    issuer: intermediate,
    ...(o.pckNotAfter ? { notAfter: o.pckNotAfter } : {}),
  })
  return { root, intermediate, pck, chainPem: pck.pem + intermediate.pem + root.pem }
}

export interface TdBodyFields {
  readonly teeTcbSvn?: Uint8Array
  readonly tdAttributes?: bigint
  readonly xfam?: bigint
  readonly mrTd?: Uint8Array
  readonly mrConfigId?: Uint8Array
  readonly mrOwner?: Uint8Array
  readonly rtmr?: readonly Uint8Array[]
  readonly reportData?: Uint8Array
}

export interface TdxQuoteOptions extends TdBodyFields {
  readonly pck: TestCert
  readonly chainPem: string
  readonly version?: 4 | 5
  /** v5 only: 2 = TDX 1.0 body, 3 = TDX 1.5 body. */
  readonly bodyType?: 2 | 3
  readonly attestationKey?: TestKeyPair
  readonly qeAuthData?: Uint8Array
}

/** Intel's QE vendor ID, as real quotes carry it. */
const INTEL_QE_VENDOR_ID = Buffer.from('939a7233f79c4ca9940a0db3957f0607', 'hex')

const le16 = (n: number) => Buffer.from(Uint16Array.of(n).buffer)
const le32 = (n: number) => Buffer.from(Uint32Array.of(n).buffer)
const le64 = (n: bigint) => Buffer.from(BigUint64Array.of(n).buffer)

/** The fixed-size TD report body (584 bytes, or 648 for a TDX 1.5 body). */
export function tdReportBody(f: TdBodyFields, tdx15 = false): Buffer {
  const b = Buffer.alloc(tdx15 ? 648 : 584)
  b.set(f.teeTcbSvn ?? Buffer.from('03000500000000000000000000000000', 'hex'), 0)
  b.set(Buffer.alloc(48, 0x2f), 16) // mr_seam
  b.set(le64(f.tdAttributes ?? 0n), 120)
  b.set(le64(f.xfam ?? 0xe7n), 128)
  b.set(f.mrTd ?? Buffer.alloc(48, 0x70), 136)
  b.set(f.mrConfigId ?? Buffer.alloc(48), 184)
  b.set(f.mrOwner ?? Buffer.alloc(48), 232)
  const rtmr = f.rtmr ?? [0x10, 0x11, 0x12, 0x13].map((v) => Buffer.alloc(48, v))
  rtmr.forEach((r, i) => b.set(r, 328 + 48 * i))
  b.set(f.reportData ?? Buffer.alloc(64), 520)
  if (tdx15) b.set(Buffer.alloc(48, 0x5e), 600)
  return b
}

/** Builds and signs a TD quote: attestation key → QE report (PCK-signed) → quote. */
export function buildTdxQuote(o: TdxQuoteOptions): Buffer {
  const version = o.version ?? 4
  const attKey = o.attestationKey ?? testKey('p256')
  const qeAuth = Buffer.from(o.qeAuthData ?? randomBytes(32))
  const header = Buffer.concat([
    le16(version),
    le16(2),
    le32(0x81),
    Buffer.alloc(4),
    INTEL_QE_VENDOR_ID,
    Buffer.alloc(20, 0xd0),
  ])
  const tdx15 = version === 5 && o.bodyType === 3
  const body = tdReportBody(o, tdx15)
  const v5 = version === 5 ? Buffer.concat([le16(o.bodyType ?? 2), le32(body.length)]) : Buffer.alloc(0)
  const signed = Buffer.concat([header, v5, body])
  const quoteSig = sign('sha256', signed, { key: attKey.privateKey, dsaEncoding: 'ieee-p1363' })

  const jwk = attKey.publicKey.export({ format: 'jwk' })
  const attKeyRaw = Buffer.concat([Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')])
  const qeReport = Buffer.alloc(384, 0)
  qeReport.set(Buffer.alloc(32, 0x8c), 64) // mr_enclave, arbitrary
  qeReport.set(createHash('sha256').update(attKeyRaw).update(qeAuth).digest(), 320)
  const qeSig = sign('sha256', qeReport, { key: o.pck.privateKey, dsaEncoding: 'ieee-p1363' })
  const pem = Buffer.concat([Buffer.from(o.chainPem, 'latin1'), Buffer.alloc(1)])
  const qeCert = Buffer.concat([qeReport, qeSig, le16(qeAuth.length), qeAuth, le16(5), le32(pem.length), pem])
  const sigData = Buffer.concat([quoteSig, attKeyRaw, le16(6), le32(qeCert.length), qeCert])
  return Buffer.concat([signed, le32(sigData.length), sigData])
}

/** Offsets into a v4 quote built by `buildTdxQuote`, for tampering tests. */
export const TDX_V4 = {
  body: 48,
  mrTd: 48 + 136,
  reportData: 48 + 520,
  sigLen: 632,
  quoteSig: 636,
  attKey: 636 + 64,
  qeReport: 636 + 128 + 6,
  qeReportSig: 636 + 128 + 6 + 384,
} as const

export function tdxEvidence(quote: Uint8Array, ccel: Uint8Array | null = null): Record<string, unknown> {
  return {
    cc_eventlog: ccel ? Buffer.from(ccel).toString('base64') : null,
    quote: Buffer.from(quote).toString('base64'),
  }
}

/** Writes PEM text to a file in `dir` and returns its path. */
export function writePem(dir: string, name: string, pem: string): string {
  const p = join(dir, name)
  writeFileSync(p, pem)
  return p
}

export interface TestCcelEvent {
  /** CC measurement register index: 1..4 = RTMR0..3. */
  readonly mrIndex: number
  readonly type: number
  readonly data: Uint8Array
}

/**
 * A CC event log in TCG crypto-agile format (Spec ID event listing SHA-256 and SHA-384, then one
 * TCG_PCR_EVENT2 per event carrying both digests of its data), padded like the ACPI table with
 * 0xFF; and the RTMRs it replays to (EV_NO_ACTION events are not extended).
 */
export function buildCcel(events: readonly TestCcelEvent[], padding = 64): { log: Buffer; rtmr: Buffer[] } {
  const algs = Buffer.concat([le16(0x0b), le16(32), le16(0x0c), le16(48)])
  const spec = Buffer.concat([
    Buffer.from('Spec ID Event03\0', 'latin1'),
    le32(0), // platform class
    Buffer.from([0, 2, 0, 2]), // spec version minor, major, errata, uintn size
    le32(2),
    algs,
    Buffer.from([0]), // vendor info size
  ])
  const parts = [le32(0), le32(3), Buffer.alloc(20), le32(spec.length), spec]
  const rtmr = [0, 1, 2, 3].map(() => Buffer.alloc(48))
  for (const e of events) {
    const d256 = createHash('sha256').update(e.data).digest()
    const d384 = createHash('sha384').update(e.data).digest()
    parts.push(
      le32(e.mrIndex),
      le32(e.type),
      le32(2),
      le16(0x0b),
      d256,
      le16(0x0c),
      d384,
      le32(e.data.length),
      Buffer.from(e.data),
    )
    if (e.type !== 3 && e.mrIndex >= 1 && e.mrIndex <= 4) {
      rtmr[e.mrIndex - 1] = createHash('sha384')
        .update(rtmr[e.mrIndex - 1]!)
        .update(d384)
        .digest()
    }
  }
  parts.push(Buffer.alloc(padding, 0xff))
  return { log: Buffer.concat(parts), rtmr }
}
