/**
 * The tpm attester and verifier against a real TPM 2.0 (swtpm + tpm2-tools): provision an AK,
 * quote, verify; then every way a quote can be wrong. Two swtpm instances stand for two machines.
 */
import { createHash, createPublicKey } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { access, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AR4SI, earStatus } from '../../lib/attest/trust.js'
import { extendPcr } from '../../lib/attest/tpm/device.js'
import type { TpmEvidence } from '../../lib/attest/tpm/evidence.js'
import { provisionAk } from '../../lib/attest/tpm/provision.js'
import type { ReferenceValues, VerifyContext } from '../../lib/attest/types.js'
import { isCofferError } from '../../lib/util/errors.js'
import { createRegistry } from '../../lib/util/registry.js'
import { plugin as attesterPlugin, type TpmAttester } from '../../plugins/attester/tpm/index.js'
import { plugin as verifierPlugin, type TpmVerifier } from '../../plugins/verifier/tpm/index.js'
import { startSwtpm, type Swtpm } from '../helpers/swtpm.js'

const ECC_AK = 0x81010003
const PSS_AK = 0x81010004

function refs(values: Record<string, string[]>): ReferenceValues {
  return { get: (name) => values[name] }
}

function sha256hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

/** A 48-byte sha384 report data, as the KBS binds it by default. */
function reportData(seed: string): Uint8Array {
  return createHash('sha384').update(seed).digest()
}

/** Reference values accepting exactly the PCR values of `ev`. */
function pcrRefs(ev: TpmEvidence): Record<string, string[]> {
  return Object.fromEntries(ev.tpm_quote.pcrs.map((v, i) => [`tpm.pcr${i}`, [v]]))
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ name: 'CofferError', code })
}

/** Base64 `s` with byte `at` (negative: from the end) XOR-ed with 0x01. */
function flipB64(s: string, at: number): string {
  const b = Buffer.from(s, 'base64')
  const i = at < 0 ? b.length + at : at
  b[i] = b[i]! ^ 0x01
  return b.toString('base64')
}

describe('tpm attester and verifier (swtpm)', () => {
  let tpmA: Swtpm
  let tpmB: Swtpm
  let akA: Uint8Array
  let akB: Uint8Array
  let attA: TpmAttester
  let attB: TpmAttester
  let verifier: TpmVerifier
  let tmp: string

  beforeAll(async () => {
    ;[tpmA, tpmB] = await Promise.all([startSwtpm(), startSwtpm()])
    akA = (await provisionAk({ tcti: tpmA.tcti })).akPublicDer
    akB = (await provisionAk({ tcti: tpmB.tcti })).akPublicDer
    // Through a registry, as the KBS and the guest will look them up.
    const registry = createRegistry([attesterPlugin, verifierPlugin] as never)
    const attester = registry.get<TpmAttester, Record<string, unknown>>('attester.v1', 'tpm')
    attA = attester.init({ tcti: tpmA.tcti })
    attB = attester.init({ tcti: tpmB.tcti, akHandle: '0x81010002' })
    verifier = registry.get<TpmVerifier, Record<string, unknown>>('verifier.v1', 'tpm').init({})
    tmp = await mkdtemp(join(tmpdir(), 'coffer-tpm-test-'))
  })

  afterAll(async () => {
    await Promise.all([tpmA?.stop(), tpmB?.stop()])
    if (tmp) await rm(tmp, { recursive: true, force: true })
  })

  const ctxFor = (
    rd: Uint8Array,
    values: Record<string, string[]> = {},
    initDataDigest?: Uint8Array,
  ): VerifyContext => ({
    reportData: rd,
    referenceValues: refs(values),
    initDataDigest,
  })

  it('detect() is true with an AK at the handle, false without one or without a TPM', async () => {
    expect(await attA.detect()).toBe(true)
    expect(await attesterPlugin.init({ tcti: tpmA.tcti, akHandle: 0x81010009 }).detect()).toBe(false)
    expect(await attesterPlugin.init({ tcti: 'swtpm:host=127.0.0.1,port=1' }).detect()).toBe(false)
  })

  it('parallel evidence requests on a TPM without resource manager all succeed (runs are queued)', async () => {
    const evs = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => attA.evidence(reportData(`parallel ${i}`))))
    for (const [i, ev] of evs.entries()) {
      const rd = reportData(`parallel ${i + 1}`)
      await expect(verifier.verify(ev, ctxFor(rd))).resolves.toBeDefined()
    }
  })

  it('provisioning is idempotent: the AK at the handle is kept unless replaced', async () => {
    const again = await provisionAk({ tcti: tpmA.tcti })
    expect(again.created).toBe(false)
    expect(Buffer.from(again.akPublicDer).equals(Buffer.from(akA))).toBe(true)
  })

  it('evidence has trustee’s shape: DER SPKI AK, TPMS_ATTEST, TPMT_SIGNATURE (RSASSA), 24 sha256 PCRs', async () => {
    const ev = (await attA.evidence(reportData('shape'))) as TpmEvidence
    expect(Object.keys(ev).sort()).toEqual(['ak_public', 'tpm_quote'])
    expect(Object.keys(ev.tpm_quote).sort()).toEqual(['message', 'pcrs', 'signature'])
    expect(Buffer.from(ev.ak_public, 'base64').equals(Buffer.from(akA))).toBe(true)
    const key = createPublicKey({ key: Buffer.from(ev.ak_public, 'base64'), format: 'der', type: 'spki' })
    expect(key.asymmetricKeyType).toBe('rsa')
    expect(ev.tpm_quote.pcrs).toHaveLength(24)
    for (const p of ev.tpm_quote.pcrs) expect(p).toMatch(/^[0-9a-f]{64}$/)
    const msg = Buffer.from(ev.tpm_quote.message, 'base64')
    expect(msg.readUInt32BE(0)).toBe(0xff544347)
    expect(msg.readUInt16BE(4)).toBe(0x8018)
    const sig = Buffer.from(ev.tpm_quote.signature, 'base64')
    // TPMT_SIGNATURE: TPM_ALG_RSASSA, TPM_ALG_SHA256, TPM2B of 256 bytes (RSA-2048)
    expect([sig.readUInt16BE(0), sig.readUInt16BE(2), sig.readUInt16BE(4), sig.length]).toEqual([
      0x14, 0x0b, 256, 262,
    ])
  })

  it('verifies a quote: claims, trusted AK → hardware APPROVED, matching PCRs → APPROVED_EXECUTABLES', async () => {
    const rd = reportData('good')
    const ev = (await attA.evidence(rd)) as TpmEvidence
    const r = await verifier.verify(ev, ctxFor(rd, { 'tpm.trusted_ak': [sha256hex(akA)], ...pcrRefs(ev) }))
    expect(r.trust).toEqual({ hardware: AR4SI.APPROVED, executables: AR4SI.APPROVED_EXECUTABLES })
    expect(earStatus(r.trust)).toBe('affirming')
    expect(r.claims.report_data).toBe(Buffer.from(rd.subarray(0, 32)).toString('hex'))
    expect(r.claims.ak_fingerprint).toBe(sha256hex(akA))
    expect(r.claims.ak_public).toBe(ev.ak_public)
    expect(r.claims.pcr00).toBe(ev.tpm_quote.pcrs[0])
    expect(r.claims.pcr23).toBe(ev.tpm_quote.pcrs[23])
    expect(r.claims.init_data).toBe(ev.tpm_quote.pcrs[8])
    expect(typeof r.claims.clock).toBe('string')
    expect(r.claims.firmware_version).toMatch(/^[0-9a-f]{16}$/)
    expect(r.claims.safe).toBe(true)
  })

  it('trusts an AK given as trustee stores it (base64 DER) or as a PEM file in trustedAkKeys', async () => {
    const rd = reportData('trust forms')
    const ev = (await attA.evidence(rd)) as TpmEvidence
    const b64 = await verifier.verify(ev, ctxFor(rd, { 'tpm.trusted_ak': [ev.ak_public] }))
    expect(b64.trust.hardware).toBe(AR4SI.APPROVED)
    const pem = join(tmp, 'ak-a.pem')
    await writeFile(
      pem,
      createPublicKey({ key: Buffer.from(akA), format: 'der', type: 'spki' }).export({
        format: 'pem',
        type: 'spki',
      }),
    )
    const withFile = verifierPlugin.init({ trustedAkKeys: [pem] })
    expect((await withFile.verify(ev, ctxFor(rd))).trust.hardware).toBe(AR4SI.APPROVED)
    // No PCR reference values: executables has nothing to be compared with.
    expect((await withFile.verify(ev, ctxFor(rd))).trust.executables).toBe(AR4SI.UNAVAILABLE)
  })

  it('an AK from another TPM verifies but is not trusted: hardware CONTRAINDICATED', async () => {
    const rd = reportData('other tpm')
    const ev = (await attB.evidence(rd)) as TpmEvidence
    const r = await verifier.verify(ev, ctxFor(rd, { 'tpm.trusted_ak': [sha256hex(akA)] }))
    expect(r.claims.ak_fingerprint).toBe(sha256hex(akB))
    expect(r.trust.hardware).toBe(AR4SI.CONTRAINDICATED)
    expect(earStatus(r.trust)).toBe('contraindicated')
  })

  it('a quote for another session is ERR_ATTEST_REPORT_DATA_MISMATCH', async () => {
    const ev = (await attA.evidence(reportData('session 1'))) as TpmEvidence
    await expectCode(verifier.verify(ev, ctxFor(reportData('session 2'))), 'ERR_ATTEST_REPORT_DATA_MISMATCH')
  })

  it('report data is fitted to 32 bytes: a 16-byte digest is zero-padded, bytes past 32 are not bound', async () => {
    const short = new Uint8Array(16).fill(7)
    const ev = (await attA.evidence(short)) as TpmEvidence
    const r = await verifier.verify(ev, ctxFor(short))
    expect(r.claims.report_data).toBe('07'.repeat(16) + '00'.repeat(16))
    const long = reportData('long')
    const ev2 = (await attA.evidence(long)) as TpmEvidence
    const tail = Buffer.from(long)
    tail[47] = tail[47]! ^ 0xff
    await expect(verifier.verify(ev2, ctxFor(tail))).resolves.toBeDefined()
  })

  describe('tampering is ERR_ATTEST_VERIFICATION_FAILED', () => {
    let ev: TpmEvidence
    const rd = reportData('tamper')
    beforeAll(async () => {
      ev = (await attA.evidence(rd)) as TpmEvidence
      await verifier.verify(ev, ctxFor(rd)) // the untampered evidence passes
    })
    const tampered = (
      edit: (q: TpmEvidence['tpm_quote']) => Partial<TpmEvidence['tpm_quote']>,
    ): TpmEvidence => ({
      ...ev,
      tpm_quote: { ...ev.tpm_quote, ...edit(ev.tpm_quote) },
    })

    it('a flipped byte in the message (pcrDigest, clock, extraData)', async () => {
      // Offsets: magic 4, type 2, qualifiedSigner 2+34, extraData size 2 → extraData at 44, clock at 76.
      for (const at of [-1, 80, 44]) {
        await expectCode(
          verifier.verify(
            tampered((q) => ({ message: flipB64(q.message, at) })),
            ctxFor(rd),
          ),
          'ERR_ATTEST_VERIFICATION_FAILED',
        )
      }
    })
    it('a flipped byte in the signature', async () => {
      for (const at of [-1, 6, 100]) {
        await expectCode(
          verifier.verify(
            tampered((q) => ({ signature: flipB64(q.signature, at) })),
            ctxFor(rd),
          ),
          'ERR_ATTEST_VERIFICATION_FAILED',
        )
      }
    })
    it('a changed PCR value', async () => {
      for (const i of [0, 8, 11, 23]) {
        const pcrs = [...ev.tpm_quote.pcrs]
        pcrs[i] = (pcrs[i]![0] === '0' ? '1' : '0') + pcrs[i]!.slice(1)
        await expectCode(
          verifier.verify(
            tampered(() => ({ pcrs })),
            ctxFor(rd),
          ),
          'ERR_ATTEST_VERIFICATION_FAILED',
        )
      }
    })
    it('the quote presented with another TPM’s AK', async () => {
      const other = { ...ev, ak_public: Buffer.from(akB).toString('base64') }
      await expectCode(verifier.verify(other, ctxFor(rd)), 'ERR_ATTEST_VERIFICATION_FAILED')
    })
  })

  it('ECDSA P-256 and RSAPSS AKs are verified too; a replaced AK is no longer trusted', async () => {
    const ecc = await provisionAk({ tcti: tpmB.tcti }, { akHandle: ECC_AK, keyType: 'ecc' })
    const pss = await provisionAk({ tcti: tpmB.tcti }, { akHandle: PSS_AK, keyType: 'rsa', scheme: 'rsapss' })
    for (const [handle, ak, alg] of [
      [ECC_AK, ecc.akPublicDer, 0x18],
      [PSS_AK, pss.akPublicDer, 0x16],
    ] as const) {
      const rd = reportData(`alg ${alg}`)
      const ev = (await attesterPlugin
        .init({ tcti: tpmB.tcti, akHandle: handle })
        .evidence(rd)) as TpmEvidence
      expect(Buffer.from(ev.tpm_quote.signature, 'base64').readUInt16BE(0)).toBe(alg)
      const r = await verifier.verify(ev, ctxFor(rd, { 'tpm.trusted_ak': [sha256hex(ak)] }))
      expect(r.trust.hardware).toBe(AR4SI.APPROVED)
      const bad = { ...ev, tpm_quote: { ...ev.tpm_quote, message: flipB64(ev.tpm_quote.message, -1) } }
      await expectCode(verifier.verify(bad, ctxFor(rd)), 'ERR_ATTEST_VERIFICATION_FAILED')
    }
    // replace: a new AK at the same handle, no longer the trusted one
    const renewed = await provisionAk({ tcti: tpmB.tcti }, { akHandle: PSS_AK, replace: true })
    expect(renewed.created).toBe(true)
    expect(Buffer.from(renewed.akPublicDer).equals(Buffer.from(pss.akPublicDer))).toBe(false)
    const rd = reportData('renewed')
    const ev = (await attesterPlugin.init({ tcti: tpmB.tcti, akHandle: PSS_AK }).evidence(rd)) as TpmEvidence
    const r = await verifier.verify(ev, ctxFor(rd, { 'tpm.trusted_ak': [sha256hex(pss.akPublicDer)] }))
    expect(r.trust.hardware).toBe(AR4SI.CONTRAINDICATED)
  })

  it('a failed provisioning reports the failing tool and leaves the TPM usable', async () => {
    const bad = provisionAk({ tcti: tpmB.tcti }, { akHandle: 0x81010005, keyType: 'rsa', scheme: 'ecdsa' })
    await expect(bad).rejects.toMatchObject({
      code: 'ERR_ATTEST_DEVICE_FAILED',
      message: expect.stringMatching(/^tpm2_createak failed/),
    })
    for (const handle of [0x81010005, 0x81010006]) {
      const ok = await provisionAk({ tcti: tpmB.tcti }, { akHandle: handle, keyType: 'ecc' })
      expect(ok.created).toBe(true)
    }
  })

  it('a PCR subset is quoted and appraised; a reference for an unquoted PCR is UNRECOGNIZED', async () => {
    const rd = reportData('subset')
    const att = attesterPlugin.init({ tcti: tpmA.tcti, pcrs: [11, 0, 7] })
    const ev = (await att.evidence(rd)) as TpmEvidence
    expect(ev.tpm_quote.pcrs).toHaveLength(3)
    const full = (await attA.evidence(rd)) as TpmEvidence
    const r = await verifier.verify(
      ev,
      ctxFor(rd, { 'tpm.pcr0': [full.tpm_quote.pcrs[0]!], 'tpm.pcr11': [full.tpm_quote.pcrs[11]!] }),
    )
    expect(Object.keys(r.claims).filter((k) => /^pcr\d\d$/.test(k))).toEqual(['pcr00', 'pcr07', 'pcr11'])
    expect(r.claims.pcr11).toBe(full.tpm_quote.pcrs[11])
    expect(r.trust.executables).toBe(AR4SI.APPROVED_EXECUTABLES)
    const r2 = await verifier.verify(ev, ctxFor(rd, { 'tpm.pcr9': [full.tpm_quote.pcrs[9]!] }))
    expect(r2.trust.executables).toBe(AR4SI.UNRECOGNIZED)
  })

  it('extending a PCR makes executables UNRECOGNIZED against the old reference values', async () => {
    const rd = reportData('before')
    const before = (await attA.evidence(rd)) as TpmEvidence
    const values = { 'tpm.trusted_ak': [sha256hex(akA)], ...pcrRefs(before) }
    expect((await verifier.verify(before, ctxFor(rd, values))).trust.executables).toBe(
      AR4SI.APPROVED_EXECUTABLES,
    )

    await extendPcr({ tcti: tpmA.tcti }, 11, createHash('sha256').update('new kernel').digest())
    const rd2 = reportData('after')
    const after = (await attA.evidence(rd2)) as TpmEvidence
    expect(after.tpm_quote.pcrs[11]).not.toBe(before.tpm_quote.pcrs[11])
    const r = await verifier.verify(after, ctxFor(rd2, values))
    expect(r.trust).toEqual({ hardware: AR4SI.APPROVED, executables: AR4SI.UNRECOGNIZED })
    expect(earStatus(r.trust)).toBe('warning')
    // Adding the new value as a second accepted one approves it again.
    const both = { ...values, 'tpm.pcr11': [before.tpm_quote.pcrs[11]!, after.tpm_quote.pcrs[11]!] }
    expect((await verifier.verify(after, ctxFor(rd2, both))).trust.executables).toBe(
      AR4SI.APPROVED_EXECUTABLES,
    )
  })

  it('init-data bound into PCR8 is checked: the right digest passes, another fails', async () => {
    const initData = createHash('sha256').update('[data]\n"aa.toml" = "…"\n').digest()
    await attB.bindInitData(initData)
    const rd = reportData('initdata')
    const ev = (await attB.evidence(rd)) as TpmEvidence
    const r = await verifier.verify(ev, ctxFor(rd, {}, initData))
    expect(r.claims.init_data).toBe(
      createHash('sha256').update(Buffer.alloc(32)).update(initData).digest('hex'),
    )
    const other = createHash('sha256').update('other').digest()
    await expectCode(verifier.verify(ev, ctxFor(rd, {}, other)), 'ERR_ATTEST_VERIFICATION_FAILED')
    // A TPM whose PCR8 was never extended binds no init-data.
    const evA = (await attA.evidence(rd)) as TpmEvidence
    await expectCode(verifier.verify(evA, ctxFor(rd, {}, initData)), 'ERR_ATTEST_VERIFICATION_FAILED')
  })

  it('quotes again when the PCR values read do not match the quote (a PCR extended mid-quote)', async () => {
    // A tpm2_quote in front of the real one that spoils the PCR values it writes for the first
    // `limit` runs, as if a PCR had been extended between the quote and the read.
    const real = execFileSync('sh', ['-c', 'command -v tpm2_quote']).toString().trim()
    const bin = join(tmp, 'bin')
    await mkdir(bin, { recursive: true })
    const counter = join(tmp, 'quote-count')
    const fake = join(bin, 'tpm2_quote')
    const install = async (limit: number): Promise<void> => {
      await rm(counter, { force: true })
      await writeFile(
        fake,
        [
          '#!/bin/sh',
          `"${real}" "$@" || exit $?`,
          `n=$(cat "${counter}" 2>/dev/null || echo 0); echo $((n+1)) > "${counter}"`,
          `if [ "$n" -lt ${limit} ]; then`,
          '  prev=; for a in "$@"; do [ "$prev" = -o ] && out=$a; prev=$a; done',
          `  printf '\\377' | dd of="$out" bs=1 count=1 conv=notrunc 2>/dev/null`,
          'fi',
        ].join('\n'),
      )
      await chmod(fake, 0o755)
    }
    const path = process.env.PATH
    process.env.PATH = `${bin}:${path}`
    try {
      await install(1)
      const rd = reportData('retry')
      const ev = (await attA.evidence(rd)) as TpmEvidence
      expect(await readFile(counter, 'utf8')).toBe('2\n')
      await expect(verifier.verify(ev, ctxFor(rd))).resolves.toBeDefined()

      await install(99)
      await expectCode(attA.evidence(rd), 'ERR_ATTEST_DEVICE_FAILED')
      expect(await readFile(counter, 'utf8')).toBe('3\n')
    } finally {
      process.env.PATH = path
    }
  })

  it('malformed reference values are ERR_ATTEST_REFERENCE_VALUES_INVALID', async () => {
    const rd = reportData('bad refs')
    const ev = (await attA.evidence(rd)) as TpmEvidence
    await expectCode(
      verifier.verify(ev, ctxFor(rd, { 'tpm.pcr0': ['not hex'] })),
      'ERR_ATTEST_REFERENCE_VALUES_INVALID',
    )
    await expectCode(
      verifier.verify(ev, ctxFor(rd, { 'tpm.trusted_ak': ['%%%'] })),
      'ERR_ATTEST_REFERENCE_VALUES_INVALID',
    )
  })

  it('tool failures are ERR_ATTEST_DEVICE_FAILED carrying the tool’s stderr', async () => {
    const noAk = attesterPlugin.init({ tcti: tpmA.tcti, akHandle: 0x81010009 })
    const err = await noAk.evidence(reportData('x')).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isCofferError(err, 'ERR_ATTEST_DEVICE_FAILED')).toBe(true)
    expect((err as Error).message).toMatch(/tpm2_readpublic failed \(exit \d+\): .*\S/)
  })

  it('any mutation of a valid evidence is rejected with a coded error, or is the same key spelled differently', async () => {
    const rd = reportData('fuzz')
    const ev = (await attA.evidence(rd)) as TpmEvidence
    const fields = ['message', 'signature', 'ak_public'] as const
    let accepted = 0
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...fields),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        async (field, pos, xor) => {
          const src = field === 'ak_public' ? ev.ak_public : ev.tpm_quote[field]
          const b = Buffer.from(src, 'base64')
          b[pos % b.length] = b[pos % b.length]! ^ xor
          const s = b.toString('base64')
          const bad: TpmEvidence =
            field === 'ak_public'
              ? { ...ev, ak_public: s }
              : { ...ev, tpm_quote: { ...ev.tpm_quote, [field]: s } }
          const values = { 'tpm.trusted_ak': [sha256hex(akA)] }
          const outcome = await verifier.verify(bad, ctxFor(rd, values)).then(
            (r) => r,
            (e: unknown) => e,
          )
          if (isCofferError(outcome)) {
            expect(outcome.code).toMatch(
              /^ERR_ATTEST_(EVIDENCE_INVALID|VERIFICATION_FAILED|REPORT_DATA_MISMATCH)$/,
            )
            return
          }
          // Accepted: only a laxly encoded ak_public can be (OpenSSL parses some non-DER
          // spellings), and then it is the same AK, with the same fingerprint and trust.
          accepted++
          expect(field).toBe('ak_public')
          const r = outcome as { claims: Record<string, unknown>; trust: { hardware?: number } }
          expect(r.claims.ak_fingerprint).toBe(sha256hex(akA))
          expect(r.trust.hardware).toBe(AR4SI.APPROVED)
        },
      ),
      { numRuns: 300 },
    )
    expect(accepted).toBeLessThan(30)
  })
})

describe('swtpm test helper', () => {
  it('stop() ends that swtpm, by pid, and removes its state; a second stop() is a no-op', async () => {
    const t = await startSwtpm()
    expect(t.tcti).toBe(`swtpm:host=127.0.0.1,port=${t.port}`)
    expect(() => process.kill(t.pid, 0)).not.toThrow()
    await t.stop()
    expect(() => process.kill(t.pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }))
    await expect(access(t.stateDir)).rejects.toMatchObject({ code: 'ENOENT' })
    await t.stop()
  })
})
