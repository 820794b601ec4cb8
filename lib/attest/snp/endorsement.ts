import type { X509Certificate } from 'node:crypto'
import { AsnConvert } from '@peculiar/asn1-schema'
import { Certificate } from '@peculiar/asn1-x509'
import { CofferError } from '../../util/errors.js'
import { bytesEqual } from '../reference-check.js'
import {
  isIssuedBy,
  parseDerCertificate,
  verifyCertificatePath,
  type VendorCertificates,
} from '../vendor-certs.js'
import type { SnpCertEntry } from './evidence.js'
import type { SnpReport } from './report.js'

/**
 * The versioned endorsement key (VCEK, or VLEK for cloud-provisioned hosts) that signs an SNP
 * report, and its chain VEK ← ASK (ASVK for a VLEK) ← ARK. AMD signs ARK, ASK and VEK with
 * RSA-PSS/SHA-384; the VEK is a P-384 key.
 */

export interface SnpEndorsement {
  readonly vek: X509Certificate
  readonly kind: 'VCEK' | 'VLEK'
}

/** AMD VCEK extension OIDs (AMD "VCEK certificate and KDS interface specification"). */
const OID = {
  BOOTLOADER_SPL: '1.3.6.1.4.1.3704.1.3.1',
  TEE_SPL: '1.3.6.1.4.1.3704.1.3.2',
  SNP_SPL: '1.3.6.1.4.1.3704.1.3.3',
  UCODE_SPL: '1.3.6.1.4.1.3704.1.3.8',
  FMC_SPL: '1.3.6.1.4.1.3704.1.3.9',
  HW_ID: '1.3.6.1.4.1.3704.1.4',
} as const

const fail = (why: string): never => {
  throw new CofferError('ERR_ATTEST_VERIFICATION_FAILED', `SNP endorsement: ${why}`)
}

/**
 * Picks the VEK from the evidence's cert table and verifies its chain to a configured ARK.
 * A missing ASK is taken from the configured intermediates (AMD's `ask_ark_asvk.pem` bundles);
 * an ARK in the evidence must be byte-identical to a configured root. coffer fetches nothing
 * from AMD KDS, so evidence without a VCEK/VLEK fails.
 */
export function verifySnpEndorsement(
  chain: readonly SnpCertEntry[],
  vendor: VendorCertificates,
  now: Date,
): SnpEndorsement {
  // trustee: the first VCEK or VLEK wins; ARK/ASK entries are optional.
  const vekEntry = chain.find((c) => c.certType === 'VCEK' || c.certType === 'VLEK')
  if (!vekEntry) return fail('the evidence carries no VCEK or VLEK certificate')
  const parse = (e: SnpCertEntry) =>
    parseDerCertificate(e.data, `SNP ${e.certType} certificate`, 'ERR_ATTEST_EVIDENCE_INVALID')
  const vek = parse(vekEntry!)
  const askEntry = chain.find((c) => c.certType === 'ASK')
  const arkEntry = chain.find((c) => c.certType === 'ARK')
  const ark = arkEntry ? parse(arkEntry) : undefined
  if (ark && !vendor.roots.some((r) => r.raw.equals(ark.raw))) fail('the ARK is not a configured vendor root')
  const ask = askEntry ? parse(askEntry) : vendor.intermediates.find((c) => isIssuedBy(vek, c))
  if (!ask) fail('no ASK in the evidence or the vendor files issued the endorsement key')

  const details = vek.publicKey.asymmetricKeyDetails
  if (vek.publicKey.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'secp384r1') {
    fail('the endorsement key is not an ECDSA P-384 key')
  }
  verifyCertificatePath(ark ? [vek, ask!, ark] : [vek, ask!], vendor.roots, now, 'SNP certificate chain')
  return { vek, kind: vekEntry!.certType as 'VCEK' | 'VLEK' }
}

/** The contents of the extension `oid`, or undefined. */
function extensionValue(cert: Certificate, oid: string): Uint8Array | undefined {
  const ext = cert.tbsCertificate.extensions?.find((e) => e.extnID === oid)
  return ext ? new Uint8Array(ext.extnValue.buffer) : undefined
}

/** A small DER INTEGER (AMD encodes each SPL as one, e.g. `02 01 73`). */
function derSmallInt(v: Uint8Array | undefined, what: string): number {
  if (!v || v.length < 3 || v[0] !== 0x02 || v[1] !== v.length - 2 || v.length > 6) {
    return fail(`the endorsement key's ${what} extension is missing or malformed`)
  }
  let n = 0
  for (const byte of v.subarray(2)) n = n * 256 + byte
  return n
}

/**
 * The VEK is issued for one TCB (and, for a VCEK, one chip): its SPL extensions must equal the
 * report's reported_tcb, and its hwID the report's chip_id (trustee `verify_report_tcb`). A masked
 * chip ID (all zero) is not compared: such guests can only use a VLEK or a host-supplied VCEK.
 */
export function checkEndorsedTcb(e: SnpEndorsement, report: SnpReport): void {
  let cert: Certificate
  try {
    cert = AsnConvert.parse(e.vek.raw, Certificate)
  } catch (cause) {
    throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', 'SNP endorsement key certificate cannot be parsed', {
      cause,
    })
  }
  const t = report.reportedTcb
  const checks: [string, string, number][] = [
    ['bootloader', OID.BOOTLOADER_SPL, t.bootloader],
    ['tee', OID.TEE_SPL, t.tee],
    ['snp', OID.SNP_SPL, t.snp],
    ['microcode', OID.UCODE_SPL, t.microcode],
  ]
  if (t.fmc !== null) checks.push(['fmc', OID.FMC_SPL, t.fmc])
  for (const [name, oid, value] of checks) {
    if (derSmallInt(extensionValue(cert, oid), `${name} SPL`) !== value) {
      fail(`reported_tcb.${name} differs from the endorsement key's TCB`)
    }
  }
  if (e.kind !== 'VCEK' || report.chipId.every((b) => b === 0)) return
  const hwid = extensionValue(cert, OID.HW_ID)
  // Older VCEKs hold the 64 raw bytes; newer ones a DER OCTET STRING of them (trustee get_oid_octets).
  const raw = hwid?.length === 66 && hwid[0] === 0x04 && hwid[1] === 0x40 ? hwid.subarray(2) : hwid
  // Turin VCEKs are issued for the first 8 bytes of the chip ID only (trustee parse_hw_id_from_vcek).
  const expected = raw?.length === 8 ? report.chipId.subarray(0, 8) : report.chipId
  if (!raw || !bytesEqual(raw, expected)) fail("the VCEK's hwID differs from the report's chip_id")
}
