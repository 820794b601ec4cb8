import { verify, type KeyObject } from 'node:crypto'
import { CofferError } from '../../util/errors.js'
import { SNP_SIGNED_SIZE, type SnpReport } from './report.js'

/** P-384 scalars are 48 bytes; the report pads each to 72. */
const P384_SCALAR = 48

/**
 * The report's R‖S as IEEE P1363 (big-endian, 48 bytes each). The report stores each scalar
 * little-endian in 72 bytes (SNP ABI spec "ECDSA P-384 with SHA-384 Signature"); non-zero padding
 * is refused rather than ignored, so one signature has one encoding.
 */
export function snpSignatureToP1363(sig: SnpReport['signature']): Uint8Array | undefined {
  const out = new Uint8Array(2 * P384_SCALAR)
  for (const [i, part] of [sig.r, sig.s].entries()) {
    if (part.subarray(P384_SCALAR).some((b) => b !== 0)) return undefined
    out.set(part.subarray(0, P384_SCALAR).slice().reverse(), i * P384_SCALAR)
  }
  return out
}

/** The inverse, for test reports and tools that sign: P1363 (96 bytes) → two 72-byte LE scalars. */
export function p1363ToSnpSignature(p1363: Uint8Array): SnpReport['signature'] {
  const part = (off: number) => {
    const out = new Uint8Array(72)
    out.set(
      p1363
        .subarray(off, off + P384_SCALAR)
        .slice()
        .reverse(),
    )
    return out
  }
  return { r: part(0), s: part(P384_SCALAR) }
}

/**
 * Checks the ECDSA P-384/SHA-384 signature over bytes 0x000..0x29F with the VEK's key.
 * A bad signature is ERR_ATTEST_VERIFICATION_FAILED with a fixed message (STYLE §6).
 */
export function verifySnpReportSignature(reportBytes: Uint8Array, report: SnpReport, vek: KeyObject): void {
  const sig = snpSignatureToP1363(report.signature)
  let ok = false
  if (sig) {
    try {
      ok = verify(
        'sha384',
        reportBytes.subarray(0, SNP_SIGNED_SIZE),
        { key: vek, dsaEncoding: 'ieee-p1363' },
        sig,
      )
    } catch {
      ok = false
    }
  }
  if (!ok) throw new CofferError('ERR_ATTEST_VERIFICATION_FAILED', 'SNP report signature verification failed')
}
