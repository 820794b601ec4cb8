import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fitReportData } from '../../../lib/attest/report-data.js'
import { parseSnpEvidence } from '../../../lib/attest/snp/evidence.js'
import {
  encodeSnpReport,
  parseSnpReport,
  SNP_REPORT_SIZE,
  type SnpReport,
} from '../../../lib/attest/snp/report.js'
import { createSnpVerifier } from '../../../lib/attest/snp/verifier.js'
import { earStatus } from '../../../lib/attest/trust.js'
import type { ReferenceValues, Verifier, VerifyContext } from '../../../lib/attest/types.js'
import { loadVendorCertificates } from '../../../lib/attest/vendor-certs.js'
import { isCofferError, type CofferErrorCode } from '../../../lib/util/errors.js'
import { makeTestCert, testKey } from '../../helpers/test-ca.js'
import {
  DEFAULT_TCB,
  makeSnpPki,
  makeVcek,
  signSnpReport,
  snpCertChain,
  snpEvidence,
  snpReport,
  tempDir,
  TURIN,
  writePem,
  type SnpPki,
} from '../../helpers/tee-reports.js'

const refs = (m: Record<string, string[]> = {}): ReferenceValues => ({ get: (n) => m[n] })
const digest = new Uint8Array(randomBytes(48))
const initData = new Uint8Array(randomBytes(48))
const ctx = (o: Partial<VerifyContext> = {}): VerifyContext => ({
  reportData: digest,
  referenceValues: refs(),
  ...o,
})

async function expectCode(p: Promise<unknown>, code: CofferErrorCode): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(isCofferError(err), `expected ${code}, got ${String(err)}`).toBe(true)
  expect((err as { code: string }).code).toBe(code)
}

describe('snp verifier (synthetic ARK → ASK → VCEK, reports signed by the test VCEK)', () => {
  let pki: SnpPki
  let other: SnpPki
  let verifier: Verifier
  const tmp = tempDir('coffer-snp-')
  /** A report bound to `digest` for this PKI's chip, with overrides. */
  const report = (o: Partial<SnpReport> = {}) =>
    snpReport({
      reportData: fitReportData(digest, 64),
      chipId: pki.chipId,
      hostData: fitReportData(initData, 32),
      ...o,
    })
  const signed = (o: Partial<SnpReport> = {}) => signSnpReport(report(o), pki.vcek.privateKey)
  const vcekChain = () => snpCertChain([['VCEK', pki.vcek]])

  beforeAll(async () => {
    pki = makeSnpPki('Genoa')
    other = makeSnpPki('Other')
    // AMD's cert_chain layout: ASK then ARK in one PEM file.
    const bundle = writePem(tmp.dir, 'genoa.pem', pki.bundlePem)
    verifier = createSnpVerifier({ vendor: await loadVendorCertificates([bundle]) })
  })
  afterAll(() => tmp.cleanup())

  it('accepts a report bound to the session, as serde JSON with the VCEK in cert_chain', async () => {
    const r = await verifier.verify(snpEvidence(signed(), vcekChain()), ctx({ initDataDigest: initData }))
    expect(r.claims).toMatchObject({
      measurement: '6a'.repeat(48),
      report_data: Buffer.from(fitReportData(digest, 64)).toString('hex'),
      host_data: Buffer.from(fitReportData(initData, 32)).toString('hex'),
      init_data: Buffer.from(fitReportData(initData, 32)).toString('hex'),
      chip_id: Buffer.from(pki.chipId).toString('hex'),
      policy_debug_allowed: false,
      policy_smt_allowed: true,
      reported_tcb_snp: 23,
      reported_tcb_microcode: 25,
    })
    // No reference values: the hardware is approved, the measurement cannot be appraised.
    expect(r.trust).toEqual({ hardware: 2, executables: 36, configuration: 2 })
    expect(earStatus(r.trust)).toBe('warning')
  })

  it('accepts the raw report as base64 and a chain that carries ASK and ARK too', async () => {
    const chain = snpCertChain([
      ['ARK', pki.ark],
      ['ASK', pki.ask],
      ['VCEK', pki.vcek],
    ])
    await expect(verifier.verify(snpEvidence(signed(), chain, { raw: true }), ctx())).resolves.toBeDefined()
  })

  it('verifies a VLEK issued by an ASVK from the vendor files, and a Turin (fmc) report', async () => {
    const asvk = makeTestCert({ subject: 'SEV-VLEK-Genoa', keyType: 'rsa', ca: true, issuer: pki.ark })
    const tcb = { ...DEFAULT_TCB, fmc: 3 }
    const vlek = makeVcek(asvk, { kind: 'VLEK', tcb })
    const files = [writePem(tmp.dir, 'ark.pem', pki.ark.pem), writePem(tmp.dir, 'asvk.pem', asvk.pem)]
    const v = createSnpVerifier({ vendor: () => loadVendorCertificates(files) })
    const bytes = signSnpReport(
      report({ ...TURIN, reportedTcb: tcb, currentTcb: tcb, committedTcb: tcb, launchTcb: tcb, version: 5 }),
      vlek.privateKey,
    )
    const r = await v.verify(snpEvidence(bytes, snpCertChain([['VLEK', vlek]])), ctx())
    expect(r.claims).toMatchObject({ reported_tcb_fmc: 3, version: 5 })
  })

  it('appraises the measurement, host_data and minimum TCB against reference values', async () => {
    const ev = snpEvidence(signed(), vcekChain())
    const good = await verifier.verify(
      ev,
      ctx({
        referenceValues: refs({
          'snp.measurement': ['AA'.repeat(48), '6A'.repeat(48)],
          'snp.host_data': [Buffer.from(fitReportData(initData, 32)).toString('hex')],
          'snp.min_tcb.snp': ['23'],
          'snp.min_tcb.microcode': ['0x19'],
        }),
      }),
    )
    expect(good.trust).toEqual({ hardware: 2, executables: 3, configuration: 2 })
    expect(earStatus(good.trust)).toBe('affirming')

    const bad = await verifier.verify(
      ev,
      ctx({
        referenceValues: refs({
          'snp.measurement': ['aa'.repeat(48)],
          'snp.host_data': ['00'.repeat(32)],
          'snp.min_tcb.bootloader': ['11'],
        }),
      }),
    )
    expect(bad.trust).toEqual({ hardware: 32, executables: 33, configuration: 33 })
    expect(earStatus(bad.trust)).toBe('warning')
  })

  it('marks a debuggable guest contraindicated even when every measurement matches', async () => {
    const ev = snpEvidence(signed({ policy: 0x30000n | (1n << 19n) }), vcekChain())
    const r = await verifier.verify(
      ev,
      ctx({ referenceValues: refs({ 'snp.measurement': ['6a'.repeat(48)] }) }),
    )
    expect(r.claims).toMatchObject({ policy_debug_allowed: true })
    expect(r.trust.configuration).toBe(97)
    expect(earStatus(r.trust)).toBe('contraindicated')
  })

  it('rejects a reference value that is not a single integer rather than skipping the check', async () => {
    await expectCode(
      verifier.verify(
        snpEvidence(signed(), vcekChain()),
        ctx({ referenceValues: refs({ 'snp.min_tcb.tee': ['x'] }) }),
      ),
      'ERR_ATTEST_REFERENCE_VALUES_INVALID',
    )
  })

  // === adversarial: each case must fail with its code, never crash, never accept
  const flip = (b: Uint8Array, at: number) => {
    const c = b.slice()
    c[at]! ^= 0x01
    return c
  }
  const cases: [string, () => { ev: unknown; c?: VerifyContext; v?: () => Verifier }, CofferErrorCode][] = [
    [
      'report_data of another session',
      () => ({ ev: snpEvidence(signed(), vcekChain()), c: ctx({ reportData: new Uint8Array(48) }) }),
      'ERR_ATTEST_REPORT_DATA_MISMATCH',
    ],
    [
      'host_data of other init-data',
      () => ({ ev: snpEvidence(signed(), vcekChain()), c: ctx({ initDataDigest: new Uint8Array(32) }) }),
      'ERR_ATTEST_REPORT_DATA_MISMATCH',
    ],
    [
      'a flipped measurement byte',
      () => ({ ev: snpEvidence(flip(signed(), 0x90), vcekChain(), { raw: true }) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a flipped report_data byte in the JSON form',
      () => {
        const e = snpEvidence(signed(), vcekChain()) as { attestation_report: { report_data: number[] } }
        e.attestation_report.report_data[0]! ^= 1
        return { ev: e }
      },
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a flipped signature byte',
      () => ({ ev: snpEvidence(flip(signed(), 0x2a0), vcekChain(), { raw: true }) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'non-zero signature padding',
      () => ({ ev: snpEvidence(flip(signed(), 0x2a0 + 71), vcekChain(), { raw: true }) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a report signed by a key that is not the VCEK',
      () => ({ ev: snpEvidence(signSnpReport(report(), testKey('p384').privateKey), vcekChain()) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a VCEK signed by another ASK',
      () => {
        const vcek = makeVcek(other.ask, { chipId: pki.chipId })
        return { ev: snpEvidence(signSnpReport(report(), vcek.privateKey), snpCertChain([['VCEK', vcek]])) }
      },
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'an ARK that is not the configured root (whole foreign chain)',
      () => {
        const vcek = makeVcek(other.ask, { chipId: pki.chipId })
        const chain = snpCertChain([
          ['ARK', other.ark],
          ['ASK', other.ask],
          ['VCEK', vcek],
        ])
        return { ev: snpEvidence(signSnpReport(report(), vcek.privateKey), chain) }
      },
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a correct chain beside a foreign ARK entry',
      () => ({
        ev: snpEvidence(
          signed(),
          snpCertChain([
            ['ARK', other.ark],
            ['VCEK', pki.vcek],
          ]),
        ),
      }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'an expired VCEK',
      () => {
        const vcek = makeVcek(pki.ask, {
          chipId: pki.chipId,
          notBefore: new Date(Date.now() - 10 * 86_400_000),
          notAfter: new Date(Date.now() - 86_400_000),
        })
        return { ev: snpEvidence(signSnpReport(report(), vcek.privateKey), snpCertChain([['VCEK', vcek]])) }
      },
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a VCEK issued for another TCB',
      () => {
        const vcek = makeVcek(pki.ask, { chipId: pki.chipId, tcb: { ...DEFAULT_TCB, microcode: 24 } })
        return { ev: snpEvidence(signSnpReport(report(), vcek.privateKey), snpCertChain([['VCEK', vcek]])) }
      },
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a VCEK issued for another chip',
      () => ({ ev: snpEvidence(signed({ chipId: new Uint8Array(64).fill(7) }), vcekChain()) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a P-256 endorsement key',
      () => {
        const vcek = makeVcek(pki.ask, { chipId: pki.chipId, keyType: 'p256' })
        return { ev: snpEvidence(signed(), snpCertChain([['VCEK', vcek]])) }
      },
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a report from VMPL 1',
      () => ({ ev: snpEvidence(signed({ vmpl: 1 }), vcekChain()) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'no cert_chain (coffer fetches no VCEK)',
      () => ({ ev: snpEvidence(signed(), null) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a truncated report',
      () => ({
        ev: {
          attestation_report: Buffer.from(signed().subarray(0, 1183)).toString('base64'),
          cert_chain: vcekChain(),
        },
      }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'an oversized report',
      () => ({
        ev: {
          attestation_report: Buffer.concat([signed(), Buffer.alloc(1)]).toString('base64'),
          cert_chain: vcekChain(),
        },
      }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a byte in the unsigned reserved tail',
      () => ({ ev: snpEvidence(flip(signed(), SNP_REPORT_SIZE - 1), vcekChain(), { raw: true }) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'report version 2',
      () => ({ ev: snpEvidence(signed({ version: 2 }), vcekChain(), { raw: true }) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'report version 2 as JSON',
      () => {
        const e = snpEvidence(signed(), vcekChain()) as { attestation_report: { version: number } }
        e.attestation_report.version = 2
        return { ev: e }
      },
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'report version 6',
      () => ({ ev: snpEvidence(signed({ version: 6 }), vcekChain(), { raw: true }) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'an unknown processor',
      () => {
        const b = signed()
        b[0x188] = 0x17
        return { ev: snpEvidence(b, vcekChain(), { raw: true }) }
      },
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'an unknown signature algorithm',
      () => ({ ev: snpEvidence(signed({ sigAlgo: 2 }), vcekChain(), { raw: true }) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a byte value of 256 in the JSON',
      () => {
        const e = snpEvidence(signed(), vcekChain()) as { attestation_report: { measurement: number[] } }
        e.attestation_report.measurement[3] = 256
        return { ev: e }
      },
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a 47-byte measurement in the JSON',
      () => {
        const e = snpEvidence(signed(), vcekChain()) as { attestation_report: { measurement: number[] } }
        e.attestation_report.measurement.pop()
        return { ev: e }
      },
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a policy past 2^53 in the JSON',
      () => {
        const e = snpEvidence(signed(), vcekChain()) as { attestation_report: { policy: number } }
        e.attestation_report.policy = 2 ** 60
        return { ev: e }
      },
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a VCEK that is not DER',
      () => ({ ev: snpEvidence(signed(), [{ cert_type: 'VCEK', data: [48, 130, 1, 2, 3] }]) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'an oversized certificate',
      () => ({ ev: snpEvidence(signed(), [{ cert_type: 'VCEK', data: new Array(17 * 1024).fill(0) }]) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'too many certificates',
      () => ({ ev: snpEvidence(signed(), new Array(9).fill(vcekChain()[0])) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'an unknown cert_type',
      () => ({ ev: snpEvidence(signed(), [{ cert_type: 'PEK', data: [1] }]) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'an attestation_report that is not base64',
      () => ({ ev: { attestation_report: '!!!!', cert_chain: null } }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    ['evidence that is a string', () => ({ ev: 'snp' }), 'ERR_ATTEST_EVIDENCE_INVALID'],
    [
      'a vendor file without a root',
      () => ({
        ev: snpEvidence(signed(), vcekChain()),
        v: () =>
          createSnpVerifier({
            vendor: () => loadVendorCertificates([writePem(tmp.dir, 'ask-only.pem', pki.ask.pem)]),
          }),
      }),
      'ERR_CONFIG_INVALID',
    ],
  ]
  it.each(cases)('rejects %s', async (_name, make, code) => {
    const { ev, c, v } = make()
    await expectCode((v ? v() : verifier).verify(ev, c ?? ctx()), code)
  })

  it('accepts the report when the ARK is configured but the ASK only comes with the evidence', async () => {
    const v = createSnpVerifier({
      vendor: await loadVendorCertificates([writePem(tmp.dir, 'ark-only.pem', pki.ark.pem)]),
    })
    await expect(
      v.verify(
        snpEvidence(
          signed(),
          snpCertChain([
            ['ASK', pki.ask],
            ['VCEK', pki.vcek],
          ]),
        ),
        ctx(),
      ),
    ).resolves.toBeDefined()
    await expectCode(v.verify(snpEvidence(signed(), vcekChain()), ctx()), 'ERR_ATTEST_VERIFICATION_FAILED')
  })

  it('rejects any single flipped byte of a valid raw report (property)', async () => {
    const good = signed()
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: SNP_REPORT_SIZE - 1 }),
        fc.integer({ min: 1, max: 255 }),
        async (at, x) => {
          const b = good.slice()
          b[at]! ^= x
          const err = await verifier.verify(snpEvidence(b, vcekChain(), { raw: true }), ctx()).then(
            () => undefined,
            (e: unknown) => e,
          )
          expect(isCofferError(err)).toBe(true)
        },
      ),
      { numRuns: 150 },
    )
  })

  it('random JSON and random bytes are ERR_ATTEST_EVIDENCE_INVALID, never a crash (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue(),
          fc
            .uint8Array({ maxLength: 1300 })
            .map((b) => ({ attestation_report: Buffer.from(b).toString('base64'), cert_chain: null })),
          fc.record({ attestation_report: fc.jsonValue(), cert_chain: fc.jsonValue() }),
        ),
        async (ev) => {
          await expectCode(verifier.verify(ev, ctx()), 'ERR_ATTEST_EVIDENCE_INVALID')
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('snp report codec', () => {
  it('round-trips every field through encode → parse → serde JSON → parse', () => {
    const r = snpReport({
      version: 5,
      launchMitVector: 7n,
      currentMitVector: 9n,
      chipId: new Uint8Array(64).fill(3),
    })
    const bytes = encodeSnpReport(r)
    expect(parseSnpReport(bytes)).toEqual(r)
    const again = parseSnpEvidence({
      attestation_report: JSON.parse(JSON.stringify(snpEvidence(bytes, null).attestation_report)),
    })
    expect(Buffer.from(again.reportBytes).equals(Buffer.from(bytes))).toBe(true)
  })

  it('places fields at the SNP ABI offsets (report_data 0x50, measurement 0x90, host_data 0xC0, chip_id 0x1A0)', () => {
    const b = encodeSnpReport(
      snpReport({
        reportData: new Uint8Array(64).fill(0xa1),
        measurement: new Uint8Array(48).fill(0xb2),
        hostData: new Uint8Array(32).fill(0xc3),
        chipId: new Uint8Array(64).fill(0xd4),
      }),
    )
    expect(b.length).toBe(1184)
    expect([b[0x50], b[0x8f], b[0x90], b[0xbf], b[0xc0], b[0xdf], b[0xe0]]).toEqual([
      0xa1, 0xa1, 0xb2, 0xb2, 0xc3, 0xc3, 0,
    ])
    expect([b[0x19f], b[0x1a0], b[0x1df], b[0x1e0]]).toEqual([0, 0xd4, 0xd4, DEFAULT_TCB.bootloader])
    // Genoa TCB layout: bootloader, tee, 4 reserved, snp, microcode.
    expect(Array.from(b.subarray(0x180, 0x188))).toEqual([10, 0, 0, 0, 0, 0, 23, 25])
  })
})
