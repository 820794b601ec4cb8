import { createHash, randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fitReportData } from '../../../lib/attest/report-data.js'
import { parseCcel } from '../../../lib/attest/tdx/ccel.js'
import { parseTdxQuote } from '../../../lib/attest/tdx/quote.js'
import { createTdxVerifier } from '../../../lib/attest/tdx/verifier.js'
import { earStatus } from '../../../lib/attest/trust.js'
import type { ReferenceValues, Verifier, VerifyContext } from '../../../lib/attest/types.js'
import { loadVendorCertificates } from '../../../lib/attest/vendor-certs.js'
import { isCofferError, type CofferErrorCode } from '../../../lib/util/errors.js'
import { makeTestCert } from '../../helpers/test-ca.js'
import {
  buildCcel,
  buildTdxQuote,
  makeTdxPki,
  tdxEvidence,
  TDX_V4,
  tempDir,
  writePem,
  type TdxPki,
  type TdxQuoteOptions,
} from '../../helpers/tee-reports.js'

const refs = (m: Record<string, string[]> = {}): ReferenceValues => ({ get: (n) => m[n] })
const digest = new Uint8Array(randomBytes(48))
const initData = new Uint8Array(randomBytes(48))
const ctx = (o: Partial<VerifyContext> = {}): VerifyContext => ({
  reportData: digest,
  referenceValues: refs(),
  ...o,
})
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

async function expectCode(p: Promise<unknown>, code: CofferErrorCode): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(isCofferError(err), `expected ${code}, got ${String(err)}`).toBe(true)
  expect((err as { code: string }).code).toBe(code)
}

describe('tdx verifier (synthetic Intel root → platform CA → PCK, quotes signed by a test QE)', () => {
  let pki: TdxPki
  let other: TdxPki
  let verifier: Verifier
  const tmp = tempDir('coffer-tdx-')
  const quote = (o: Partial<TdxQuoteOptions> = {}) =>
    buildTdxQuote({
      pck: pki.pck,
      chainPem: pki.chainPem,
      reportData: fitReportData(digest, 64),
      mrConfigId: initData,
      ...o,
    })

  beforeAll(async () => {
    pki = makeTdxPki()
    other = makeTdxPki()
    verifier = createTdxVerifier({
      vendor: await loadVendorCertificates([writePem(tmp.dir, 'intel-root.pem', pki.root.pem)]),
    })
  })
  afterAll(() => tmp.cleanup())

  it('accepts a v4 quote bound to the session and the init-data, with trustee-shaped claims', async () => {
    const r = await verifier.verify(tdxEvidence(quote()), ctx({ initDataDigest: initData }))
    const claims = r.claims as { quote: { header: Record<string, string>; body: Record<string, string> } }
    expect(claims.quote.header).toMatchObject({ version: '0400', att_key_type: '0200', tee_type: '81000000' })
    expect(claims.quote.body).toMatchObject({
      mr_td: '70'.repeat(48),
      rtmr_0: '10'.repeat(48),
      rtmr_3: '13'.repeat(48),
      mr_config_id: hex(initData),
      report_data: hex(fitReportData(digest, 64)),
      td_attributes: '0000000000000000',
      xfam: 'e700000000000000',
      tcb_svn: '03000500000000000000000000000000',
    })
    expect(r.claims).toMatchObject({ debug: false, init_data: hex(initData) })
    expect(r.trust).toEqual({ hardware: 2, executables: 36, configuration: 2 })
  })

  it('accepts v5 quotes with a TDX 1.0 and a TDX 1.5 body', async () => {
    for (const bodyType of [2, 3] as const) {
      const r = await verifier.verify(tdxEvidence(quote({ version: 5, bodyType })), ctx())
      const body = (r.claims as { quote: { body: Record<string, string> } }).quote.body
      expect(body.mr_td).toBe('70'.repeat(48))
      expect('mr_servicetd' in body).toBe(bodyType === 3)
    }
  })

  it('appraises mr_td, rtmr0..3 and mr_config_id against reference values', async () => {
    const ev = tdxEvidence(quote())
    const good = await verifier.verify(
      ev,
      ctx({
        referenceValues: refs({
          'tdx.mr_td': ['70'.repeat(48)],
          'tdx.rtmr1': ['11'.repeat(48)],
          'tdx.mr_config_id': [hex(initData)],
        }),
      }),
    )
    expect(good.trust).toEqual({ hardware: 2, executables: 3, configuration: 2 })
    expect(earStatus(good.trust)).toBe('affirming')
    const bad = await verifier.verify(
      ev,
      ctx({
        referenceValues: refs({
          'tdx.mr_td': ['70'.repeat(48)],
          'tdx.rtmr2': ['00'.repeat(48)],
          'tdx.mr_config_id': ['ff'],
        }),
      }),
    )
    expect(bad.trust).toEqual({ hardware: 2, executables: 33, configuration: 33 })
  })

  it('marks a debuggable TD contraindicated', async () => {
    const r = await verifier.verify(
      tdxEvidence(quote({ tdAttributes: 1n })),
      ctx({ referenceValues: refs({ 'tdx.mr_td': ['70'.repeat(48)] }) }),
    )
    expect(r.claims).toMatchObject({ debug: true })
    expect(earStatus(r.trust)).toBe('contraindicated')
  })

  describe('CC event log replay', () => {
    const events = [
      { mrIndex: 1, type: 0x80000001, data: Buffer.from('td-hob') },
      { mrIndex: 1, type: 0x3, data: Buffer.from('no action: never extended') },
      { mrIndex: 2, type: 0xd, data: Buffer.from('kernel') },
      { mrIndex: 3, type: 0xd, data: Buffer.from('initrd') },
      { mrIndex: 4, type: 0x6, data: Buffer.from('aa-event') },
    ]
    const ccel = buildCcel(events)

    it('accepts a log that replays to the quoted RTMRs and lists its events in the claims', async () => {
      const r = await verifier.verify(tdxEvidence(quote({ rtmr: ccel.rtmr }), ccel.log), ctx())
      const claims = r.claims as { ccel: { mr_index: number; digest: string }[] }
      expect(claims.ccel).toHaveLength(5)
      expect(claims.ccel[2]).toMatchObject({
        mr_index: 2,
        digest: hex(createHash('sha384').update('kernel').digest()),
      })
    })

    const logCases: [string, () => Uint8Array, CofferErrorCode][] = [
      [
        'a log for other RTMR values',
        () => buildCcel(events.slice(0, 3)).log,
        'ERR_ATTEST_VERIFICATION_FAILED',
      ],
      [
        'a flipped SHA-384 digest in the log',
        () => {
          const b = Buffer.from(ccel.log)
          b[b.indexOf(createHash('sha384').update('initrd').digest())]! ^= 1
          return b
        },
        'ERR_ATTEST_VERIFICATION_FAILED',
      ],
      [
        'a truncated log',
        () => ccel.log.subarray(0, ccel.log.length - 64 - 5),
        'ERR_ATTEST_EVIDENCE_INVALID',
      ],
      ['a log without the Spec ID event', () => ccel.log.subarray(4), 'ERR_ATTEST_EVIDENCE_INVALID'],
      [
        'a log without SHA-384 digests',
        () => {
          const b = Buffer.from(ccel.log)
          b.writeUInt16LE(0x0d, 32 + 28 + 4) // the header's second algorithm becomes SHA-512
          return b
        },
        'ERR_ATTEST_EVIDENCE_INVALID',
      ],
      [
        'an event using an algorithm the header does not list',
        () => {
          const b = Buffer.from(ccel.log)
          b.writeUInt16LE(0x12, b.indexOf(createHash('sha256').update('td-hob').digest()) - 2)
          return b
        },
        'ERR_ATTEST_EVIDENCE_INVALID',
      ],
    ]
    it('random bytes after a valid header parse or fail with a coded error, never crash (property)', () => {
      const header = ccel.log.subarray(0, 32 + 37)
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 400 }), (tail) => {
          try {
            parseCcel(Buffer.concat([header, tail]))
          } catch (e) {
            expect(isCofferError(e, 'ERR_ATTEST_EVIDENCE_INVALID')).toBe(true)
          }
        }),
        { numRuns: 300 },
      )
    })

    it.each(logCases)('rejects %s', async (_n, make, code) => {
      await expectCode(verifier.verify(tdxEvidence(quote({ rtmr: ccel.rtmr }), make()), ctx()), code)
    })
  })

  const flip = (b: Uint8Array, at: number) => {
    const c = Buffer.from(b)
    c[at]! ^= 0x01
    return c
  }
  const setU16 = (b: Uint8Array, at: number, v: number) => {
    const c = Buffer.from(b)
    c.writeUInt16LE(v, at)
    return c
  }
  const cases: [string, () => { ev: unknown; c?: VerifyContext }, CofferErrorCode][] = [
    [
      'report_data of another session',
      () => ({ ev: tdxEvidence(quote()), c: ctx({ reportData: new Uint8Array(48) }) }),
      'ERR_ATTEST_REPORT_DATA_MISMATCH',
    ],
    [
      'mr_config_id of other init-data',
      () => ({ ev: tdxEvidence(quote()), c: ctx({ initDataDigest: new Uint8Array(48) }) }),
      'ERR_ATTEST_REPORT_DATA_MISMATCH',
    ],
    [
      'a flipped mr_td byte',
      () => ({ ev: tdxEvidence(flip(quote(), TDX_V4.mrTd)) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a flipped report_data byte',
      () => ({ ev: tdxEvidence(flip(quote(), TDX_V4.reportData + 63)) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a flipped quote signature byte',
      () => ({ ev: tdxEvidence(flip(quote(), TDX_V4.quoteSig + 5)) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a swapped attestation key (QE binding)',
      () => ({ ev: tdxEvidence(flip(quote(), TDX_V4.attKey + 63)) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      "an attacker's attestation key beside a genuine QE report (binding)",
      () => {
        // The attacker signs with its own key K2 but reuses the genuine QE report (which binds K1)
        // and its valid PCK signature: only the QE report_data binding catches this.
        const genuine = quote()
        const forged = quote({ mrTd: new Uint8Array(48).fill(0xee) })
        const spliced = Buffer.concat([
          forged.subarray(0, TDX_V4.attKey + 64),
          genuine.subarray(TDX_V4.attKey + 64),
        ])
        return { ev: tdxEvidence(spliced) }
      },
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a flipped QE report byte',
      () => ({ ev: tdxEvidence(flip(quote(), TDX_V4.qeReport + 10)) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a flipped QE report signature byte',
      () => ({ ev: tdxEvidence(flip(quote(), TDX_V4.qeReportSig)) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a PCK from another Intel root',
      () => ({ ev: tdxEvidence(quote({ pck: other.pck, chainPem: other.chainPem })) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a QE report signed by another PCK than the chain holds',
      () => ({ ev: tdxEvidence(quote({ pck: other.pck })) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a PCK signed by an intermediate the root never issued',
      () => {
        const rogue = makeTestCert({ subject: 'Intel SGX PCK Platform CA', keyType: 'p256', ca: true })
        const pck = makeTestCert({ subject: 'Intel SGX PCK Certificate', keyType: 'p256', issuer: rogue })
        return { ev: tdxEvidence(quote({ pck, chainPem: pck.pem + rogue.pem + pki.root.pem })) }
      },
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'an intermediate that is not a CA',
      () => {
        const notCa = makeTestCert({
          subject: 'Intel SGX PCK Platform CA',
          keyType: 'p256',
          issuer: pki.root,
        })
        const pck = makeTestCert({ subject: 'Intel SGX PCK Certificate', keyType: 'p256', issuer: notCa })
        return { ev: tdxEvidence(quote({ pck, chainPem: pck.pem + notCa.pem + pki.root.pem })) }
      },
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'an expired PCK',
      () => {
        const pck = makeTestCert({
          subject: 'Intel SGX PCK Certificate',
          keyType: 'p256',
          issuer: pki.intermediate,
          notBefore: new Date(Date.now() - 3 * 86_400_000),
          notAfter: new Date(Date.now() - 86_400_000),
        })
        return { ev: tdxEvidence(quote({ pck, chainPem: pck.pem + pki.intermediate.pem + pki.root.pem })) }
      },
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'a chain with only the PCK',
      () => ({ ev: tdxEvidence(quote({ chainPem: pki.pck.pem })) }),
      'ERR_ATTEST_VERIFICATION_FAILED',
    ],
    [
      'an empty PCK chain',
      () => ({ ev: tdxEvidence(quote({ chainPem: '' })) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a garbage PEM certificate',
      () => ({
        ev: tdxEvidence(
          quote({ chainPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }),
        ),
      }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    ['quote version 3', () => ({ ev: tdxEvidence(setU16(quote(), 0, 3)) }), 'ERR_ATTEST_EVIDENCE_INVALID'],
    ['quote version 6', () => ({ ev: tdxEvidence(setU16(quote(), 0, 6)) }), 'ERR_ATTEST_EVIDENCE_INVALID'],
    [
      'attestation key type 3 (ECDSA-P384)',
      () => ({ ev: tdxEvidence(setU16(quote(), 2, 3)) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    ['tee type SGX (0)', () => ({ ev: tdxEvidence(setU16(quote(), 4, 0)) }), 'ERR_ATTEST_EVIDENCE_INVALID'],
    [
      'a v5 body type 1',
      () => ({ ev: tdxEvidence(setU16(quote({ version: 5 }), 48, 1)) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a v5 body size that lies',
      () => ({ ev: tdxEvidence(setU16(quote({ version: 5 }), 50, 600)) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a truncated quote',
      () => ({ ev: tdxEvidence(quote().subarray(0, 1000)) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a quote cut inside the header',
      () => ({ ev: tdxEvidence(quote().subarray(0, 20)) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a signature length past the end',
      () => {
        const q = Buffer.from(quote())
        q.writeUInt32LE(0xffffffff, TDX_V4.sigLen)
        return { ev: tdxEvidence(q) }
      },
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a QE auth data length past the end',
      () => ({ ev: tdxEvidence(setU16(quote(), TDX_V4.qeReportSig + 64, 0xffff)) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'a certification data type other than 6',
      () => ({ ev: tdxEvidence(setU16(quote(), TDX_V4.attKey + 64, 5)) }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    [
      'an oversized quote',
      () => ({ ev: { quote: Buffer.alloc(65 * 1024).toString('base64') } }),
      'ERR_ATTEST_EVIDENCE_INVALID',
    ],
    ['a quote that is not base64', () => ({ ev: { quote: 'not base64!' } }), 'ERR_ATTEST_EVIDENCE_INVALID'],
    ['a missing quote', () => ({ ev: { cc_eventlog: null } }), 'ERR_ATTEST_EVIDENCE_INVALID'],
  ]
  it.each(cases)('rejects %s', async (_name, make, code) => {
    const { ev, c } = make()
    await expectCode(verifier.verify(ev, c ?? ctx()), code)
  })

  it('the tampering offsets point at the fields they name (guards the table above)', () => {
    const q = parseTdxQuote(quote())
    const raw = quote()
    expect(q.signedBytes.length).toBe(TDX_V4.sigLen)
    expect(hex(raw.subarray(TDX_V4.mrTd, TDX_V4.mrTd + 48))).toBe('70'.repeat(48))
    expect(hex(raw.subarray(TDX_V4.reportData, TDX_V4.reportData + 64))).toBe(hex(fitReportData(digest, 64)))
    expect(raw.readUInt16LE(TDX_V4.attKey + 64)).toBe(6)
  })

  it('rejects any single flipped byte of the signed part or the QE data (property)', async () => {
    const good = quote()
    const end = TDX_V4.qeReportSig + 64
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: end - 1 }),
        fc.integer({ min: 1, max: 255 }),
        async (at, x) => {
          const b = Buffer.from(good)
          b[at]! ^= x
          const err = await verifier.verify(tdxEvidence(b), ctx()).then(
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
          fc.uint8Array({ maxLength: 6000 }).map((b) => ({ quote: Buffer.from(b).toString('base64') })),
          fc.record({ quote: fc.jsonValue(), cc_eventlog: fc.jsonValue() }),
        ),
        async (ev) => {
          await expectCode(verifier.verify(ev, ctx()), 'ERR_ATTEST_EVIDENCE_INVALID')
        },
      ),
      { numRuns: 300 },
    )
  })

  it('random bytes with a valid v4 header never crash the parser (property)', async () => {
    const header = quote().subarray(0, 48)
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), async (tail) => {
        const q = Buffer.concat([header, tail])
        await expectCode(verifier.verify(tdxEvidence(q), ctx()), 'ERR_ATTEST_EVIDENCE_INVALID')
      }),
      { numRuns: 200 },
    )
  })
})
