/**
 * The tpm verifier against quotes from a software "TPM" (Node keys, hand-marshalled TPMS_ATTEST):
 * the checklist order, the error codes, appraisal, and malformed evidence. The same verifier
 * against real swtpm quotes is test/integration/tpm.test.ts.
 */
import { createHash, generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AR4SI } from '../../../lib/attest/trust.js'
import type { TpmEvidence } from '../../../lib/attest/tpm/evidence.js'
import type { VerifyContext } from '../../../lib/attest/types.js'
import { isCofferError } from '../../../lib/util/errors.js'
import { plugin as attesterPlugin } from '../../../plugins/attester/tpm/index.js'
import { plugin } from '../../../plugins/verifier/tpm/index.js'
import { samplePcrs, softwareEvidence } from '../../helpers/tpm-quote.js'

const ak = generateKeyPairSync('rsa', { modulusLength: 2048 })
const akFingerprint = createHash('sha256')
  .update(ak.publicKey.export({ format: 'der', type: 'spki' }))
  .digest('hex')
const reportData = createHash('sha384').update('session').digest()
const verifier = plugin.init({})

function ctx(
  values: Record<string, string[]> = {},
  rd: Uint8Array = reportData,
  initDataDigest?: Uint8Array,
): VerifyContext {
  return { reportData: rd, referenceValues: { get: (n) => values[n] }, initDataDigest }
}

function evidence(o: Partial<Parameters<typeof softwareEvidence>[0]> = {}): TpmEvidence {
  return softwareEvidence({ ...ak, scheme: 'rsassa', extraData: reportData.subarray(0, 32), ...o })
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
    return undefined
  } catch (e) {
    if (!isCofferError(e)) throw e
    return e.code
  }
}

describe('tpm verifier (software quotes)', () => {
  it('accepts a good quote and reports claims named as trustee names them', async () => {
    const ev = evidence()
    const r = await verifier.verify(ev, ctx({ 'tpm.trusted_ak': [akFingerprint.toUpperCase()] }))
    expect(r.trust).toEqual({ hardware: AR4SI.APPROVED, executables: AR4SI.UNAVAILABLE })
    expect(r.claims).toMatchObject({
      pcr00: ev.tpm_quote.pcrs[0],
      pcr08: ev.tpm_quote.pcrs[8],
      init_data: ev.tpm_quote.pcrs[8],
      report_data: reportData.subarray(0, 32).toString('hex'),
      ak_public: ev.ak_public,
      ak_fingerprint: akFingerprint,
      clock: '123456789',
      reset_count: 3,
      restart_count: 1,
      safe: true,
      firmware_version: '2019102300163636',
    })
  })

  it('an AK spelled in lax DER is the same AK: same fingerprint, trusted by fingerprint or either base64', async () => {
    const canonical = ak.publicKey.export({ format: 'der', type: 'spki' })
    const lax = Buffer.from(canonical)
    lax[17] = 0x04 // RSA parameters as an empty OCTET STRING instead of NULL
    const ev = { ...evidence(), ak_public: lax.toString('base64') }
    for (const trusted of [akFingerprint, canonical.toString('base64'), ev.ak_public]) {
      const r = await verifier.verify(ev, ctx({ 'tpm.trusted_ak': [trusted] }))
      expect(r.trust.hardware).toBe(AR4SI.APPROVED)
      expect(r.claims.ak_fingerprint).toBe(akFingerprint)
      expect(r.claims.ak_public).toBe(ev.ak_public) // as sent, as trustee reports it
    }
  })

  it('checks the signature before the report data: a quote for another session with a bad signature is a signature failure', async () => {
    const ev = evidence({ extraData: Buffer.alloc(32) })
    expect(await code(verifier.verify(ev, ctx()))).toBe('ERR_ATTEST_REPORT_DATA_MISMATCH')
    const forged = {
      ...ev,
      tpm_quote: {
        ...ev.tpm_quote,
        signature: evidence({ privateKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey })
          .tpm_quote.signature,
      },
    }
    expect(await code(verifier.verify(forged, ctx()))).toBe('ERR_ATTEST_VERIFICATION_FAILED')
  })

  it('extraData must be exactly the fitted report data: 64 bytes (older guest-components) do not match', async () => {
    const padded = Buffer.concat([reportData, Buffer.alloc(16)])
    expect(await code(verifier.verify(evidence({ extraData: padded }), ctx()))).toBe(
      'ERR_ATTEST_REPORT_DATA_MISMATCH',
    )
    expect(await code(verifier.verify(evidence({ extraData: reportData }), ctx()))).toBe(
      'ERR_ATTEST_REPORT_DATA_MISMATCH',
    )
  })

  it('the selection must be one sha256 bank with as many PCRs as values', async () => {
    const sha1 = evidence({ fields: { selections: [{ hashAlg: 0x0004, pcrs: [...Array(24).keys()] }] } })
    expect(await code(verifier.verify(sha1, ctx()))).toBe('ERR_ATTEST_EVIDENCE_INVALID')
    const two = evidence({
      fields: {
        selections: [
          { hashAlg: 0x000b, pcrs: [...Array(24).keys()] },
          { hashAlg: 0x000c, pcrs: [0] },
        ],
      },
    })
    expect(await code(verifier.verify(two, ctx()))).toBe('ERR_ATTEST_EVIDENCE_INVALID')
    const fewer = evidence({ fields: { selections: [{ hashAlg: 0x000b, pcrs: [0, 1] }] } })
    expect(await code(verifier.verify(fewer, ctx()))).toBe('ERR_ATTEST_EVIDENCE_INVALID')
    const none = evidence({ fields: { selections: [] } })
    expect(await code(verifier.verify(none, ctx()))).toBe('ERR_ATTEST_EVIDENCE_INVALID')
  })

  it('PCR values that are not the quoted ones fail, even with a valid signature', async () => {
    const ev = evidence()
    const other = samplePcrs('other').map((v) => v.toString('hex'))
    expect(await code(verifier.verify({ ...ev, tpm_quote: { ...ev.tpm_quote, pcrs: other } }, ctx()))).toBe(
      'ERR_ATTEST_VERIFICATION_FAILED',
    )
    const reordered = [...ev.tpm_quote.pcrs].reverse()
    expect(
      await code(verifier.verify({ ...ev, tpm_quote: { ...ev.tpm_quote, pcrs: reordered } }, ctx())),
    ).toBe('ERR_ATTEST_VERIFICATION_FAILED')
  })

  it('appraises PCRs: all referenced match → 3, one mismatch → 33, none referenced → 36', async () => {
    const ev = evidence()
    const [p0, p11] = [ev.tpm_quote.pcrs[0]!, ev.tpm_quote.pcrs[11]!]
    const zero = '00'.repeat(32)
    expect(
      (await verifier.verify(ev, ctx({ 'tpm.pcr0': [zero, p0], 'tpm.pcr11': [p11] }))).trust.executables,
    ).toBe(3)
    expect(
      (await verifier.verify(ev, ctx({ 'tpm.pcr0': [p0], 'tpm.pcr11': [zero] }))).trust.executables,
    ).toBe(33)
    expect((await verifier.verify(ev, ctx({ 'tpm.pcr0': [] }))).trust.executables).toBe(36)
  })

  it('init-data: PCR8 = sha256(0^32 ‖ digest) passes; sha384 digests are fitted to 32 bytes', async () => {
    const digest = createHash('sha256').update('init').digest()
    const sha384 = createHash('sha384').update('init').digest()
    const pcrs = samplePcrs()
    pcrs[8] = createHash('sha256').update(Buffer.alloc(32)).update(digest).digest()
    const ev = evidence({ pcrValues: pcrs })
    await expect(verifier.verify(ev, ctx({}, reportData, digest))).resolves.toBeDefined()
    expect(await code(verifier.verify(ev, ctx({}, reportData, sha384)))).toBe(
      'ERR_ATTEST_VERIFICATION_FAILED',
    )
    pcrs[8] = createHash('sha256').update(Buffer.alloc(32)).update(sha384.subarray(0, 32)).digest()
    await expect(
      verifier.verify(evidence({ pcrValues: pcrs }), ctx({}, reportData, sha384)),
    ).resolves.toBeDefined()
    // no PCR8 in the quote: nothing binds the init-data
    const sub = evidence({
      pcrValues: pcrs.slice(0, 8),
      fields: { selections: [{ hashAlg: 0x000b, pcrs: [...Array(8).keys()] }] },
    })
    expect(await code(verifier.verify(sub, ctx({}, reportData, sha384)))).toBe(
      'ERR_ATTEST_VERIFICATION_FAILED',
    )
  })

  it('random JSON is ERR_ATTEST_EVIDENCE_INVALID, never a crash', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.jsonValue(), fc.anything()), async (v) => {
        expect(await code(verifier.verify(v, ctx()))).toBe('ERR_ATTEST_EVIDENCE_INVALID')
      }),
      { numRuns: 500 },
    )
  })

  it('random bytes as the message are ERR_ATTEST_EVIDENCE_INVALID', async () => {
    const ev = evidence()
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 600 }), async (bytes) => {
        const bad = { ...ev, tpm_quote: { ...ev.tpm_quote, message: Buffer.from(bytes).toString('base64') } }
        expect(await code(verifier.verify(bad, ctx()))).toBe('ERR_ATTEST_EVIDENCE_INVALID')
      }),
      { numRuns: 500 },
    )
  })

  it('rejects malformed fields at the schema', async () => {
    const ev = evidence()
    const q = ev.tpm_quote
    const cases: unknown[] = [
      { ...ev, ak_public: undefined },
      { ...ev, ak_public: ev.ak_public + ' ' },
      { ...ev, ak_public: ev.ak_public.slice(0, -1) }, // not a whole number of base64 quanta
      { ...ev, tpm_quote: { ...q, message: 'A'.repeat(8000) } },
      { ...ev, tpm_quote: { ...q, signature: q.signature.replace(/[+/]/g, '-') + '-' } },
      { ...ev, tpm_quote: { ...q, pcrs: [...q.pcrs, q.pcrs[0]] } },
      { ...ev, tpm_quote: { ...q, pcrs: [] } },
      { ...ev, tpm_quote: { ...q, pcrs: q.pcrs.map((p) => p.slice(2)) } },
      { ...ev, tpm_quote: { ...q, pcrs: q.pcrs.map((p) => 'zz' + p.slice(2)) } },
      { ...ev, tpm_quote: { ...q, pcrs: 'x' } },
    ]
    for (const c of cases) expect(await code(verifier.verify(c, ctx()))).toBe('ERR_ATTEST_EVIDENCE_INVALID')
    // unknown keys are ignored, as serde does
    await expect(
      verifier.verify({ ...ev, report_data: 'x', tpm_quote: { ...q, extra: 1 } }, ctx()),
    ).resolves.toBeDefined()
  })
})

describe('tpm plugin settings', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-tpm-settings-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('verifier: trustedAkKeys loads PEM files; a missing or non-key file is ERR_CONFIG_INVALID', async () => {
    const pem = join(dir, 'ak.pem')
    await writeFile(pem, ak.publicKey.export({ format: 'pem', type: 'spki' }))
    const v = plugin.init({ trustedAkKeys: [pem] })
    expect((await v.verify(evidence(), ctx())).trust.hardware).toBe(AR4SI.APPROVED)
    expect((await verifier.verify(evidence(), ctx())).trust.hardware).toBe(AR4SI.CONTRAINDICATED)
    const junk = join(dir, 'junk.pem')
    await writeFile(junk, 'not a key')
    for (const s of [
      { trustedAkKeys: [join(dir, 'missing.pem')] },
      { trustedAkKeys: [junk] },
      { trustedAkKeys: 'x' },
      { other: 1 },
    ]) {
      expect(() => plugin.init(s)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }))
    }
  })

  it('attester: handles, PCR lists and TCTIs are validated; numbers may come as strings (--attester-opt)', () => {
    for (const ok of [
      { akHandle: '0x81010003', pcrs: [23, 0], tcti: 'swtpm:port=2321' },
      { akHandle: '2164326402', pcrs: '0,7,11' },
      { pcrs: 'all' },
      // keys for other attesters: selection hands every candidate the same settings
      { unknown: true },
    ]) {
      expect(() => attesterPlugin.init(ok)).not.toThrow()
    }
    for (const s of [
      { akHandle: 0x80000001 }, // transient, not persistent
      { akHandle: '81010002' }, // decimal, so not a persistent handle
      { akHandle: '0x1' },
      { pcrs: [24] },
      { pcrs: [1, 1] },
      { pcrs: [] },
      { pcrs: '0,,1' },
      { pcrs: '1,1' },
      { tcti: '-x' },
      { tcti: 42 },
    ]) {
      expect(() => attesterPlugin.init(s)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }))
    }
  })
})
