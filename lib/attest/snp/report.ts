import { CofferError } from '../../util/errors.js'

/**
 * The AMD SEV-SNP ATTESTATION_REPORT (SEV-SNP Firmware ABI spec, table "ATTESTATION_REPORT
 * Structure"): 1184 little-endian bytes. Field placement follows virtee/sev
 * `src/firmware/guest/types/snp.rs` (the crate trustee and guest-components use), which is also
 * what their serde JSON is re-encoded with before the signature is checked.
 */

export const SNP_REPORT_SIZE = 0x4a0
/** The signature covers bytes 0x000..0x29F. */
export const SNP_SIGNED_SIZE = 0x2a0
/** End of R ‖ S; the rest of the report is reserved. */
const SNP_SIGNATURE_END = 0x2a0 + 2 * 72
/** trustee deps/verifier/src/snp REPORT_VERSION_MIN/MAX: v3 is the first to name the CPU model. */
export const SNP_REPORT_VERSION_MIN = 3
export const SNP_REPORT_VERSION_MAX = 5
/** sig_algo 1 = ECDSA P-384 with SHA-384. */
export const SNP_SIG_ALGO_ECDSA_P384_SHA384 = 1

/** The processor generation decides how a TCB_VERSION's 8 bytes are laid out. */
export type SnpGeneration = 'milan' | 'genoa' | 'turin' | 'venice'

/** A TCB_VERSION; `fmc` exists from Turin on (virtee serialises it as null before). */
export interface SnpTcb {
  readonly fmc: number | null
  readonly bootloader: number
  readonly tee: number
  readonly snp: number
  readonly microcode: number
}

export interface SnpFirmwareVersion {
  readonly major: number
  readonly minor: number
  readonly build: number
}

/** A parsed report; byte fields are raw, in report order. */
export interface SnpReport {
  readonly version: number
  readonly guestSvn: number
  readonly policy: bigint
  readonly familyId: Uint8Array
  readonly imageId: Uint8Array
  readonly vmpl: number
  readonly sigAlgo: number
  readonly currentTcb: SnpTcb
  readonly platInfo: bigint
  readonly keyInfo: number
  readonly reportData: Uint8Array
  readonly measurement: Uint8Array
  readonly hostData: Uint8Array
  readonly idKeyDigest: Uint8Array
  readonly authorKeyDigest: Uint8Array
  readonly reportId: Uint8Array
  readonly reportIdMa: Uint8Array
  readonly reportedTcb: SnpTcb
  readonly cpuidFamId: number
  readonly cpuidModId: number
  readonly cpuidStep: number
  readonly chipId: Uint8Array
  readonly committedTcb: SnpTcb
  readonly current: SnpFirmwareVersion
  readonly committed: SnpFirmwareVersion
  readonly launchTcb: SnpTcb
  /** v5 only (0 before). */
  readonly launchMitVector: bigint
  readonly currentMitVector: bigint
  /** R and S, each 72 bytes little-endian, zero-padded (only the low 48 bytes are used). */
  readonly signature: { readonly r: Uint8Array; readonly s: Uint8Array }
}

/** Byte offsets of each field (SNP ABI spec; checked against trustee's test-report.bin). */
export const SNP_OFFSETS = {
  version: 0x00,
  guestSvn: 0x04,
  policy: 0x08,
  familyId: 0x10,
  imageId: 0x20,
  vmpl: 0x30,
  sigAlgo: 0x34,
  currentTcb: 0x38,
  platInfo: 0x40,
  keyInfo: 0x48,
  reportData: 0x50,
  measurement: 0x90,
  hostData: 0xc0,
  idKeyDigest: 0xe0,
  authorKeyDigest: 0x110,
  reportId: 0x140,
  reportIdMa: 0x160,
  reportedTcb: 0x180,
  cpuidFamId: 0x188,
  cpuidModId: 0x189,
  cpuidStep: 0x18a,
  chipId: 0x1a0,
  committedTcb: 0x1e0,
  current: 0x1e8,
  committed: 0x1ec,
  launchTcb: 0x1f0,
  launchMitVector: 0x1f8,
  currentMitVector: 0x200,
  signatureR: 0x2a0,
  signatureS: 0x2e8,
} as const

/** Sizes of the byte-array fields. */
export const SNP_FIELD_SIZES = {
  familyId: 16,
  imageId: 16,
  reportData: 64,
  measurement: 48,
  hostData: 32,
  idKeyDigest: 48,
  authorKeyDigest: 48,
  reportId: 32,
  reportIdMa: 32,
  chipId: 64,
  signaturePart: 72,
} as const

function invalid(why: string): never {
  throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', `SNP attestation report: ${why}`)
}

/** virtee `Generation::identify_cpu`: CPUID family 0x19 (Zen 3/4) or 0x1A (Zen 5) and model. */
export function snpGeneration(family: number, model: number): SnpGeneration {
  if (family === 0x19) {
    if (model <= 0x0f) return 'milan'
    if ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf)) return 'genoa'
  } else if (family === 0x1a) {
    if (model <= 0x11) return 'turin'
    if (
      (model >= 0x50 && model <= 0x57) ||
      (model >= 0x90 && model <= 0xaf) ||
      (model >= 0xc0 && model <= 0xc7)
    ) {
      return 'venice'
    }
  }
  return invalid(`unknown processor (family 0x${family.toString(16)}, model 0x${model.toString(16)})`)
}

const hasFmc = (g: SnpGeneration): boolean => g === 'turin' || g === 'venice'

function readTcb(b: Uint8Array, off: number, g: SnpGeneration): SnpTcb {
  // Milan/Genoa: bootloader, tee, 4 reserved, snp, microcode. Turin on: fmc, bootloader, tee, snp,
  // 3 reserved, microcode (virtee TcbVersion::from_legacy_bytes / from_turin_bytes).
  return hasFmc(g)
    ? { fmc: b[off]!, bootloader: b[off + 1]!, tee: b[off + 2]!, snp: b[off + 3]!, microcode: b[off + 7]! }
    : { fmc: null, bootloader: b[off]!, tee: b[off + 1]!, snp: b[off + 6]!, microcode: b[off + 7]! }
}

function writeTcb(b: Uint8Array, off: number, t: SnpTcb, g: SnpGeneration): void {
  const bytes = hasFmc(g)
    ? [t.fmc ?? 0, t.bootloader, t.tee, t.snp, 0, 0, 0, t.microcode]
    : [t.bootloader, t.tee, 0, 0, 0, 0, t.snp, t.microcode]
  b.set(bytes, off)
}

/**
 * Parses a raw report. Bounds-checked: exactly SNP_REPORT_SIZE bytes, a version trustee accepts
 * (3..5), a known processor and signature algorithm; anything else is ERR_ATTEST_EVIDENCE_INVALID.
 * Parsing checks no signature (see verify-report.ts).
 */
export function parseSnpReport(bytes: Uint8Array): SnpReport {
  if (bytes.length !== SNP_REPORT_SIZE) invalid(`${bytes.length} bytes, expected ${SNP_REPORT_SIZE}`)
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const u32 = (off: number) => dv.getUint32(off, true)
  const u64 = (off: number) => dv.getBigUint64(off, true)
  const O = SNP_OFFSETS
  const S = SNP_FIELD_SIZES
  const slice = (off: number, len: number) => bytes.slice(off, off + len)

  const version = u32(O.version)
  if (version < SNP_REPORT_VERSION_MIN || version > SNP_REPORT_VERSION_MAX) {
    invalid(`version ${version} is not supported (${SNP_REPORT_VERSION_MIN}..${SNP_REPORT_VERSION_MAX})`)
  }
  const sigAlgo = u32(O.sigAlgo)
  if (sigAlgo !== SNP_SIG_ALGO_ECDSA_P384_SHA384) invalid(`unknown signature algorithm ${sigAlgo}`)
  // The bytes after S are reserved and outside the signature: refuse anything there, so no
  // unsigned byte can ride along (serde JSON evidence drops them anyway).
  if (bytes.subarray(SNP_SIGNATURE_END).some((v) => v !== 0))
    invalid('reserved bytes after the signature are not zero')
  const cpuidFamId = bytes[O.cpuidFamId]!
  const cpuidModId = bytes[O.cpuidModId]!
  const g = snpGeneration(cpuidFamId, cpuidModId)
  const fw = (off: number): SnpFirmwareVersion => ({
    build: bytes[off]!,
    minor: bytes[off + 1]!,
    major: bytes[off + 2]!,
  })
  return {
    version,
    guestSvn: u32(O.guestSvn),
    policy: u64(O.policy),
    familyId: slice(O.familyId, S.familyId),
    imageId: slice(O.imageId, S.imageId),
    vmpl: u32(O.vmpl),
    sigAlgo,
    currentTcb: readTcb(bytes, O.currentTcb, g),
    platInfo: u64(O.platInfo),
    keyInfo: u32(O.keyInfo),
    reportData: slice(O.reportData, S.reportData),
    measurement: slice(O.measurement, S.measurement),
    hostData: slice(O.hostData, S.hostData),
    idKeyDigest: slice(O.idKeyDigest, S.idKeyDigest),
    authorKeyDigest: slice(O.authorKeyDigest, S.authorKeyDigest),
    reportId: slice(O.reportId, S.reportId),
    reportIdMa: slice(O.reportIdMa, S.reportIdMa),
    reportedTcb: readTcb(bytes, O.reportedTcb, g),
    cpuidFamId,
    cpuidModId,
    cpuidStep: bytes[O.cpuidStep]!,
    chipId: slice(O.chipId, S.chipId),
    committedTcb: readTcb(bytes, O.committedTcb, g),
    current: fw(O.current),
    committed: fw(O.committed),
    launchTcb: readTcb(bytes, O.launchTcb, g),
    launchMitVector: version >= 5 ? u64(O.launchMitVector) : 0n,
    currentMitVector: version >= 5 ? u64(O.currentMitVector) : 0n,
    signature: { r: slice(O.signatureR, S.signaturePart), s: slice(O.signatureS, S.signaturePart) },
  }
}

/**
 * Encodes a report to its 1184 bytes, reserved bytes zero (virtee's `Encoder` for
 * AttestationReport). The verifier uses it to turn trustee's serde JSON back into the signed
 * bytes; tests use it to build synthetic reports.
 */
export function encodeSnpReport(r: SnpReport): Uint8Array {
  const b = new Uint8Array(SNP_REPORT_SIZE)
  const dv = new DataView(b.buffer)
  const O = SNP_OFFSETS
  const S = SNP_FIELD_SIZES
  const g = snpGeneration(r.cpuidFamId, r.cpuidModId)
  const put = (off: number, v: Uint8Array, len: number) => {
    if (v.length !== len) invalid(`a field at 0x${off.toString(16)} has ${v.length} bytes, expected ${len}`)
    b.set(v, off)
  }
  dv.setUint32(O.version, r.version, true)
  dv.setUint32(O.guestSvn, r.guestSvn, true)
  dv.setBigUint64(O.policy, r.policy, true)
  put(O.familyId, r.familyId, S.familyId)
  put(O.imageId, r.imageId, S.imageId)
  dv.setUint32(O.vmpl, r.vmpl, true)
  dv.setUint32(O.sigAlgo, r.sigAlgo, true)
  writeTcb(b, O.currentTcb, r.currentTcb, g)
  dv.setBigUint64(O.platInfo, r.platInfo, true)
  dv.setUint32(O.keyInfo, r.keyInfo, true)
  put(O.reportData, r.reportData, S.reportData)
  put(O.measurement, r.measurement, S.measurement)
  put(O.hostData, r.hostData, S.hostData)
  put(O.idKeyDigest, r.idKeyDigest, S.idKeyDigest)
  put(O.authorKeyDigest, r.authorKeyDigest, S.authorKeyDigest)
  put(O.reportId, r.reportId, S.reportId)
  put(O.reportIdMa, r.reportIdMa, S.reportIdMa)
  writeTcb(b, O.reportedTcb, r.reportedTcb, g)
  b[O.cpuidFamId] = r.cpuidFamId
  b[O.cpuidModId] = r.cpuidModId
  b[O.cpuidStep] = r.cpuidStep
  put(O.chipId, r.chipId, S.chipId)
  writeTcb(b, O.committedTcb, r.committedTcb, g)
  b.set([r.current.build, r.current.minor, r.current.major], O.current)
  b.set([r.committed.build, r.committed.minor, r.committed.major], O.committed)
  writeTcb(b, O.launchTcb, r.launchTcb, g)
  if (r.version >= 5) {
    dv.setBigUint64(O.launchMitVector, r.launchMitVector, true)
    dv.setBigUint64(O.currentMitVector, r.currentMitVector, true)
  }
  put(O.signatureR, r.signature.r, S.signaturePart)
  put(O.signatureS, r.signature.s, S.signaturePart)
  return b
}

/** GUEST_POLICY bits (SNP ABI spec "GUEST_POLICY Structure"). */
export const SNP_POLICY = {
  SMT: 1n << 16n,
  MIGRATE_MA: 1n << 18n,
  DEBUG: 1n << 19n,
  SINGLE_SOCKET: 1n << 20n,
} as const

/** PLATFORM_INFO bits. */
export const SNP_PLATFORM = {
  SMT_EN: 1n << 0n,
  TSME_EN: 1n << 1n,
} as const
