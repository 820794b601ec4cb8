import { hex, integerReference, matchReference } from '../reference-check.js'
import { AR4SI } from '../trust.js'
import type { ReferenceValues, TrustVector } from '../types.js'
import { SNP_PLATFORM, SNP_POLICY, type SnpReport } from './report.js'

/**
 * Claims from a verified SNP report and their appraisal. Claim names follow trustee's
 * `parse_tee_evidence` (deps/verifier/src/snp/mod.rs), so attestation policies written for
 * trustee read coffer's tokens; `host_data` is added under its own name beside trustee's
 * `init_data`.
 */

/** AR4SI hardware 32: genuine, but its firmware is below the accepted TCB ("unsafe"). */
const HARDWARE_UNSAFE = 32

export function snpClaims(r: SnpReport): Record<string, unknown> {
  const p = r.policy
  const bit = (v: bigint, mask: bigint) => (v & mask) !== 0n
  return {
    version: r.version,
    guest_svn: r.guestSvn,
    vmpl: r.vmpl,
    policy_abi_major: Number((p >> 8n) & 0xffn),
    policy_abi_minor: Number(p & 0xffn),
    policy_smt_allowed: bit(p, SNP_POLICY.SMT),
    policy_migrate_ma: bit(p, SNP_POLICY.MIGRATE_MA),
    policy_debug_allowed: bit(p, SNP_POLICY.DEBUG),
    policy_single_socket: bit(p, SNP_POLICY.SINGLE_SOCKET),
    reported_tcb_bootloader: r.reportedTcb.bootloader,
    reported_tcb_tee: r.reportedTcb.tee,
    reported_tcb_snp: r.reportedTcb.snp,
    reported_tcb_microcode: r.reportedTcb.microcode,
    ...(r.reportedTcb.fmc !== null ? { reported_tcb_fmc: r.reportedTcb.fmc } : {}),
    platform_tsme_enabled: bit(r.platInfo, SNP_PLATFORM.TSME_EN),
    platform_smt_enabled: bit(r.platInfo, SNP_PLATFORM.SMT_EN),
    measurement: hex(r.measurement),
    report_data: hex(r.reportData),
    init_data: hex(r.hostData),
    host_data: hex(r.hostData),
    family_id: hex(r.familyId),
    image_id: hex(r.imageId),
    id_key_digest: hex(r.idKeyDigest),
    chip_id: hex(r.chipId),
  }
}

const TCB_PARTS = ['bootloader', 'tee', 'snp', 'microcode'] as const

/**
 * Appraisal against reference values:
 * - hardware: approved (the chain to the AMD root held), or "unsafe" when reported_tcb is below
 *   any `snp.min_tcb.<part>`;
 * - executables: `snp.measurement` matched → approved, differs → unrecognized, none → unavailable;
 * - configuration: a debuggable guest is contraindicated whatever else holds; otherwise
 *   `snp.host_data` differing → unrecognized, else approved.
 */
export function appraiseSnp(r: SnpReport, refs: ReferenceValues): TrustVector {
  let hardware: number = AR4SI.APPROVED
  for (const part of TCB_PARTS) {
    const min = integerReference(refs, `snp.min_tcb.${part}`)
    if (min !== undefined && r.reportedTcb[part] < min) hardware = HARDWARE_UNSAFE
  }
  const measurement = matchReference(refs, 'snp.measurement', hex(r.measurement))
  const executables =
    measurement === 'match'
      ? AR4SI.APPROVED_EXECUTABLES
      : measurement === 'mismatch'
        ? AR4SI.UNRECOGNIZED
        : AR4SI.UNAVAILABLE
  let configuration: number = AR4SI.APPROVED
  if ((r.policy & SNP_POLICY.DEBUG) !== 0n) configuration = AR4SI.CONTRAINDICATED
  else if (matchReference(refs, 'snp.host_data', hex(r.hostData)) === 'mismatch') {
    configuration = AR4SI.UNRECOGNIZED
  }
  return { hardware, executables, configuration }
}
