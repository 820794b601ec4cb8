/**
 * The SNP/TDX verifiers against OpenSSL, the reference for X.509 and ECDSA: the synthetic AMD
 * (RSA-PSS) and Intel (ECDSA) chains the unit tests use are chains `openssl verify` accepts, and
 * coffer's path check agrees with it on broken ones; an SNP report signed by `openssl dgst` (DER
 * signature, converted to the report's little-endian R‖S here with openssl's own asn1parse) passes
 * the snp verifier, so the byte order is not coffer agreeing with itself.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { fitReportData } from '../../lib/attest/report-data.js'
import { encodeSnpReport, SNP_SIGNED_SIZE } from '../../lib/attest/snp/report.js'
import { createSnpVerifier } from '../../lib/attest/snp/verifier.js'
import { loadVendorCertificates, verifyCertificatePath } from '../../lib/attest/vendor-certs.js'
import { makeTestCert } from '../helpers/test-ca.js'
import {
  makeSnpPki,
  makeTdxPki,
  snpCertChain,
  snpEvidence,
  snpReport,
  tempDir,
  writePem,
} from '../helpers/tee-reports.js'

const execFileP = promisify(execFile)
const tmp = tempDir('coffer-tee-openssl-')
afterAll(() => tmp.cleanup())

async function openssl(args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout, stderr } = await execFileP('openssl', args, { timeout: 30_000 })
    return { ok: true, out: stdout + stderr }
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string }
    // A missing openssl must fail the test, not read as "openssl rejected the chain".
    if (e.code === 'ENOENT') throw err
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}

/** `openssl verify` of `leaf` with `untrusted` intermediates up to `root`. */
const opensslVerify = (root: string, untrusted: string, leaf: string) =>
  openssl(['verify', '-CAfile', root, '-untrusted', untrusted, leaf])

describe('vendor chains: coffer agrees with openssl verify', () => {
  const snp = makeSnpPki()
  const tdx = makeTdxPki()
  const otherRoot = makeTestCert({ subject: 'ARK-Genoa', keyType: 'rsa', ca: true })
  const expiredPck = makeTestCert({
    subject: 'Intel SGX PCK Certificate',
    keyType: 'p256',
    issuer: tdx.intermediate,
    notBefore: new Date(Date.now() - 3 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
  })
  const f = (name: string, pem: string) => writePem(tmp.dir, name, pem)
  const cases: [string, string, string, string, () => boolean][] = [
    [
      'AMD ARK → ASK → VCEK (RSA-PSS/SHA-384)',
      f('ark.pem', snp.ark.pem),
      f('ask.pem', snp.ask.pem),
      f('vcek.pem', snp.vcek.pem),
      () =>
        verifyCertificatePath([snp.vcek.cert, snp.ask.cert], [snp.ark.cert], new Date(), 'snp').length === 3,
    ],
    [
      'Intel root → platform CA → PCK (ECDSA P-256)',
      f('intel.pem', tdx.root.pem),
      f('platform.pem', tdx.intermediate.pem),
      f('pck.pem', tdx.pck.pem),
      () =>
        verifyCertificatePath([tdx.pck.cert, tdx.intermediate.cert], [tdx.root.cert], new Date(), 'tdx')
          .length === 3,
    ],
  ]
  it.each(cases)('openssl verify accepts %s, and so does coffer', async (_n, root, mid, leaf, coffer) => {
    const r = await opensslVerify(root, mid, leaf)
    expect(r.ok, r.out).toBe(true)
    expect(r.out).toContain(': OK')
    expect(coffer()).toBe(true)
  })

  it('both refuse a VCEK under an ARK that is not the trusted one', async () => {
    const r = await opensslVerify(
      f('other-ark.pem', otherRoot.pem),
      f('ask2.pem', snp.ask.pem),
      f('vcek2.pem', snp.vcek.pem),
    )
    expect(r.ok).toBe(false)
    expect(() =>
      verifyCertificatePath([snp.vcek.cert, snp.ask.cert], [otherRoot.cert], new Date(), 'snp'),
    ).toThrow(expect.objectContaining({ code: 'ERR_ATTEST_VERIFICATION_FAILED' }))
  })

  it('both refuse an expired PCK', async () => {
    const r = await opensslVerify(
      f('intel3.pem', tdx.root.pem),
      f('platform3.pem', tdx.intermediate.pem),
      f('old-pck.pem', expiredPck.pem),
    )
    expect(r.ok).toBe(false)
    expect(r.out).toMatch(/expired/)
    expect(() =>
      verifyCertificatePath([expiredPck.cert, tdx.intermediate.cert], [tdx.root.cert], new Date(), 'tdx'),
    ).toThrow(expect.objectContaining({ code: 'ERR_ATTEST_VERIFICATION_FAILED' }))
  })
})

describe('an SNP report signed by openssl', () => {
  it('passes the snp verifier once its DER signature is laid out as little-endian R‖S', async () => {
    const pki = makeSnpPki()
    const digest = new Uint8Array(randomBytes(48))
    const report = snpReport({ reportData: fitReportData(digest, 64), chipId: pki.chipId })
    const unsigned = encodeSnpReport(report)
    const body = join(tmp.dir, 'report-body.bin')
    const key = join(tmp.dir, 'vcek.key')
    const sig = join(tmp.dir, 'report.sig')
    writeFileSync(body, unsigned.subarray(0, SNP_SIGNED_SIZE))
    writeFileSync(key, pki.vcek.privateKey.export({ type: 'pkcs8', format: 'pem' }))
    const signed = await openssl(['dgst', '-sha384', '-sign', key, '-out', sig, body])
    expect(signed.ok, signed.out).toBe(true)
    // openssl's own view of the DER signature: two INTEGER lines, big-endian hex.
    const parsed = await openssl(['asn1parse', '-inform', 'DER', '-in', sig])
    const ints = [...parsed.out.matchAll(/INTEGER\s+:([0-9A-F]+)/g)].map((m) => m[1]!)
    expect(ints).toHaveLength(2)
    const le72 = (hexBe: string) => {
      const out = new Uint8Array(72)
      out.set(Buffer.from(hexBe.padStart(96, '0'), 'hex').reverse())
      return out
    }
    const bytes = encodeSnpReport({ ...report, signature: { r: le72(ints[0]!), s: le72(ints[1]!) } })
    const verifier = createSnpVerifier({
      vendor: await loadVendorCertificates([writePem(tmp.dir, 'bundle.pem', pki.bundlePem)]),
    })
    const ctx = { reportData: digest, referenceValues: { get: () => undefined } }
    await expect(
      verifier.verify(snpEvidence(bytes, snpCertChain([['VCEK', pki.vcek]])), ctx),
    ).resolves.toBeDefined()
    // …and the same signature with R and S swapped does not.
    const swapped = encodeSnpReport({ ...report, signature: { r: le72(ints[1]!), s: le72(ints[0]!) } })
    await expect(
      verifier.verify(snpEvidence(swapped, snpCertChain([['VCEK', pki.vcek]])), ctx),
    ).rejects.toMatchObject({
      code: 'ERR_ATTEST_VERIFICATION_FAILED',
    })
  })
})
