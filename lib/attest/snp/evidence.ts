import { z } from 'zod'
import { CofferError } from '../../util/errors.js'
import { MAX_EVIDENCE_CERT_BYTES } from '../vendor-certs.js'
import { encodeSnpReport, parseSnpReport, SNP_REPORT_SIZE, type SnpReport, type SnpTcb } from './report.js'

/**
 * The `snp` evidence JSON as trustee (deps/verifier/src/snp `SnpEvidence`) and guest-components
 * (attester/src/snp) exchange it: `{"attestation_report": <virtee serde JSON>, "cert_chain":
 * [{"cert_type": "VCEK", "data": [DER bytes]}] | null}`. virtee serialises byte arrays as lists of
 * numbers, TCB versions as objects and the signature as `{r: [72], s: [72]}` (see
 * trustee attestation-service/tests/e2e/evidence.json). coffer also accepts the raw report as a
 * base64 string in `attestation_report`.
 */

/** virtee `CertType` serde names; `OTHER` carries a GUID. */
export type SnpCertType = 'ARK' | 'ASK' | 'VCEK' | 'VLEK' | 'CRL' | 'Empty' | 'OTHER'

export interface SnpCertEntry {
  readonly certType: SnpCertType
  readonly data: Uint8Array
}

export interface SnpEvidence {
  readonly report: SnpReport
  /** The report's 1184 bytes as signed (re-encoded from JSON when it came as JSON). */
  readonly reportBytes: Uint8Array
  readonly certChain: readonly SnpCertEntry[]
}

/** A chain is ARK, ASK, VCEK/VLEK and maybe a CRL; more entries than this is abuse. */
export const MAX_SNP_CERT_ENTRIES = 8

const u8 = z.number().int().min(0).max(0xff)
const u32 = z.number().int().min(0).max(0xffff_ffff)
// u64 fields arrive as JSON numbers; past 2^53 JSON.parse already lost precision, so refuse them.
const u64 = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const bytes = (n: number) => z.array(u8).length(n)
const tcb = z.object({
  fmc: u8.nullish(),
  bootloader: u8,
  tee: u8,
  snp: u8,
  microcode: u8,
})
const fwVersion = z.object({ major: u8, minor: u8, build: u8 })

const serdeReport = z.object({
  version: u32,
  guest_svn: u32,
  policy: u64,
  family_id: bytes(16),
  image_id: bytes(16),
  vmpl: u32,
  sig_algo: u32,
  current_tcb: tcb,
  plat_info: u64,
  key_info: u32,
  report_data: bytes(64),
  measurement: bytes(48),
  host_data: bytes(32),
  id_key_digest: bytes(48),
  author_key_digest: bytes(48),
  report_id: bytes(32),
  report_id_ma: bytes(32),
  reported_tcb: tcb,
  cpuid_fam_id: u8.nullish(),
  cpuid_mod_id: u8.nullish(),
  cpuid_step: u8.nullish(),
  chip_id: bytes(64),
  committed_tcb: tcb,
  current: fwVersion,
  committed: fwVersion,
  launch_tcb: tcb,
  launch_mit_vector: u64.nullish(),
  current_mit_vector: u64.nullish(),
  signature: z.object({ r: bytes(72), s: bytes(72) }),
})
export type SerdeSnpReport = z.infer<typeof serdeReport>

const certType = z.union([
  z.enum(['ARK', 'ASK', 'VCEK', 'VLEK', 'CRL', 'Empty']),
  z.object({ OTHER: z.string().max(64) }).transform(() => 'OTHER' as const),
])

const evidenceSchema = z.object({
  attestation_report: z.union([serdeReport, z.string().max(4 * SNP_REPORT_SIZE)]),
  cert_chain: z
    .array(z.object({ cert_type: certType, data: z.array(u8).max(MAX_EVIDENCE_CERT_BYTES) }))
    .max(MAX_SNP_CERT_ENTRIES)
    .nullish(),
})

const tcbFromSerde = (t: z.infer<typeof tcb>): SnpTcb => ({
  fmc: t.fmc ?? null,
  bootloader: t.bootloader,
  tee: t.tee,
  snp: t.snp,
  microcode: t.microcode,
})

const tcbToSerde = (t: SnpTcb) => ({
  fmc: t.fmc,
  bootloader: t.bootloader,
  tee: t.tee,
  snp: t.snp,
  microcode: t.microcode,
})

function fromSerde(s: SerdeSnpReport): SnpReport {
  const b = (v: readonly number[]) => Uint8Array.from(v)
  return {
    version: s.version,
    guestSvn: s.guest_svn,
    policy: BigInt(s.policy),
    familyId: b(s.family_id),
    imageId: b(s.image_id),
    vmpl: s.vmpl,
    sigAlgo: s.sig_algo,
    currentTcb: tcbFromSerde(s.current_tcb),
    platInfo: BigInt(s.plat_info),
    keyInfo: s.key_info,
    reportData: b(s.report_data),
    measurement: b(s.measurement),
    hostData: b(s.host_data),
    idKeyDigest: b(s.id_key_digest),
    authorKeyDigest: b(s.author_key_digest),
    reportId: b(s.report_id),
    reportIdMa: b(s.report_id_ma),
    reportedTcb: tcbFromSerde(s.reported_tcb),
    cpuidFamId: s.cpuid_fam_id ?? 0,
    cpuidModId: s.cpuid_mod_id ?? 0,
    cpuidStep: s.cpuid_step ?? 0,
    chipId: b(s.chip_id),
    committedTcb: tcbFromSerde(s.committed_tcb),
    current: s.current,
    committed: s.committed,
    launchTcb: tcbFromSerde(s.launch_tcb),
    launchMitVector: BigInt(s.launch_mit_vector ?? 0),
    currentMitVector: BigInt(s.current_mit_vector ?? 0),
    signature: { r: b(s.signature.r), s: b(s.signature.s) },
  }
}

/**
 * A report as virtee's serde JSON, keys in its struct order, so trustee's verifier reads what
 * coffer's attester sends. The mitigation vectors are null before version 5.
 */
export function snpReportToSerde(r: SnpReport): SerdeSnpReport {
  const a = (v: Uint8Array) => Array.from(v)
  return {
    version: r.version,
    guest_svn: r.guestSvn,
    policy: Number(r.policy),
    family_id: a(r.familyId),
    image_id: a(r.imageId),
    vmpl: r.vmpl,
    sig_algo: r.sigAlgo,
    current_tcb: tcbToSerde(r.currentTcb),
    plat_info: Number(r.platInfo),
    key_info: r.keyInfo,
    report_data: a(r.reportData),
    measurement: a(r.measurement),
    host_data: a(r.hostData),
    id_key_digest: a(r.idKeyDigest),
    author_key_digest: a(r.authorKeyDigest),
    report_id: a(r.reportId),
    report_id_ma: a(r.reportIdMa),
    reported_tcb: tcbToSerde(r.reportedTcb),
    cpuid_fam_id: r.cpuidFamId,
    cpuid_mod_id: r.cpuidModId,
    cpuid_step: r.cpuidStep,
    chip_id: a(r.chipId),
    committed_tcb: tcbToSerde(r.committedTcb),
    current: { ...r.current },
    committed: { ...r.committed },
    launch_tcb: tcbToSerde(r.launchTcb),
    launch_mit_vector: r.version >= 5 ? Number(r.launchMitVector) : null,
    current_mit_vector: r.version >= 5 ? Number(r.currentMitVector) : null,
    signature: { r: a(r.signature.r), s: a(r.signature.s) },
  }
}

const STRICT_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Validates untrusted `snp` evidence and parses its report. Any shape, range or size problem is
 * ERR_ATTEST_EVIDENCE_INVALID; signatures are not checked here.
 */
export function parseSnpEvidence(evidence: unknown): SnpEvidence {
  const parsed = evidenceSchema.safeParse(evidence)
  if (!parsed.success) {
    throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', 'SNP evidence does not have the expected shape', {
      cause: parsed.error,
    })
  }
  const e = parsed.data
  let reportBytes: Uint8Array
  if (typeof e.attestation_report === 'string') {
    if (!STRICT_BASE64.test(e.attestation_report)) {
      throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', 'SNP attestation_report is not base64')
    }
    reportBytes = Buffer.from(e.attestation_report, 'base64')
  } else {
    // The signature covers the binary report, so JSON goes back to the exact signed bytes.
    const version = e.attestation_report.version
    if (version < 3) {
      throw new CofferError(
        'ERR_ATTEST_EVIDENCE_INVALID',
        `SNP attestation report: version ${version} is not supported`,
      )
    }
    reportBytes = encodeSnpReport(fromSerde(e.attestation_report))
  }
  const report = parseSnpReport(reportBytes)
  const certChain = (e.cert_chain ?? []).map((c) => ({
    certType: c.cert_type,
    data: Uint8Array.from(c.data),
  }))
  return { report, reportBytes, certChain }
}
