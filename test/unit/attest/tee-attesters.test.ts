import { randomBytes } from 'node:crypto'
import * as fsp from 'node:fs/promises'
import { writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSnpAttester } from '../../../lib/attest/snp/attester.js'
import { encodeSnpCertTable, parseSnpCertTable } from '../../../lib/attest/snp/cert-table.js'
import { createSnpVerifier } from '../../../lib/attest/snp/verifier.js'
import { createTdxAttester } from '../../../lib/attest/tdx/attester.js'
import { createTdxVerifier } from '../../../lib/attest/tdx/verifier.js'
import { requestTsmReport, type TsmFs } from '../../../lib/attest/tsm-report.js'
import { ATTESTER_POINT, VERIFIER_POINT, type Attester, type Verifier } from '../../../lib/attest/types.js'
import { loadVendorCertificates } from '../../../lib/attest/vendor-certs.js'
import { isCofferError } from '../../../lib/util/errors.js'
import { createRegistry, type Registration } from '../../../lib/util/registry.js'
import { plugin as snpAttesterPlugin } from '../../../plugins/attester/snp/index.js'
import { plugin as tdxAttesterPlugin } from '../../../plugins/attester/tdx/index.js'
import { plugin as snpVerifierPlugin } from '../../../plugins/verifier/snp/index.js'
import { plugin as tdxVerifierPlugin } from '../../../plugins/verifier/tdx/index.js'
import {
  buildCcel,
  buildTdxQuote,
  makeSnpPki,
  makeTdxPki,
  signSnpReport,
  snpReport,
  tempDir,
  writePem,
  type SnpPki,
  type TdxPki,
} from '../../helpers/tee-reports.js'

/**
 * A fake configfs-tsm "kernel" over a real temp directory: mkdir populates `provider` and
 * `generation`; writing `inblob` bumps the generation and produces `outblob` (and `auxblob`).
 * `bump` lets a test simulate another writer racing the request.
 */
/** Every fake kernel's temp dir, removed after the file's tests. */
const fakeRoots: { cleanup(): void | Promise<void> }[] = []
afterAll(async () => {
  for (const r of fakeRoots) await r.cleanup()
})

function fakeTsm(
  provider: string,
  produce: (inblob: Uint8Array) => { outblob: Uint8Array; auxblob?: Uint8Array },
  o: { bump?: number } = {},
): TsmFs & { entries: () => Promise<string[]>; root: string } {
  const root = tempDir('coffer-tsm-')
  fakeRoots.push(root)
  return {
    root: root.dir,
    entries: () => fsp.readdir(root.dir),
    mkdir: async (p) => {
      await fsp.mkdir(p)
      await fsp.writeFile(join(p, 'provider'), `${provider}\n`)
      await fsp.writeFile(join(p, 'generation'), '0\n')
    },
    rmdir: (p) => fsp.rm(p, { recursive: true }),
    readFile: (p) => fsp.readFile(p),
    writeFile: async (p, data) => {
      await fsp.writeFile(p, data)
      if (basename(p) !== 'inblob') return
      const dir = dirname(p)
      const g = Number((await fsp.readFile(join(dir, 'generation'), 'latin1')).trim())
      await fsp.writeFile(join(dir, 'generation'), `${g + (o.bump ?? 1)}\n`)
      const out = produce(new Uint8Array(data))
      await fsp.writeFile(join(dir, 'outblob'), out.outblob)
      if (out.auxblob) await fsp.writeFile(join(dir, 'auxblob'), out.auxblob)
    },
  }
}

const digest = new Uint8Array(randomBytes(48))
const ctx = { reportData: digest, referenceValues: { get: () => undefined } }
const tmp = tempDir('coffer-tee-att-')
afterAll(() => tmp.cleanup())

describe('snp and tdx attesters (configfs-tsm)', () => {
  let snp: SnpPki
  let tdx: TdxPki
  beforeAll(() => {
    snp = makeSnpPki()
    tdx = makeTdxPki()
  })

  it('detect() is false on this machine (no /dev/sev-guest, no /dev/tdx_guest)', async () => {
    expect(await createSnpAttester().detect()).toBe(false)
    expect(await createTdxAttester().detect()).toBe(false)
  })

  it('detect() needs both the guest device and the configfs-tsm directory', async () => {
    const dev = join(tmp.dir, 'sev-guest')
    writeFileSync(dev, '')
    expect(await createSnpAttester({ devicePath: dev, tsmRoot: tmp.dir }).detect()).toBe(true)
    expect(await createSnpAttester({ devicePath: dev, tsmRoot: join(tmp.dir, 'none') }).detect()).toBe(false)
    expect(await createTdxAttester({ devicePath: join(tmp.dir, 'none'), tsmRoot: tmp.dir }).detect()).toBe(
      false,
    )
  })

  it("snp: the attester's evidence (report + host cert table) passes the snp verifier", async () => {
    const kernel = fakeTsm('sev_guest', (inblob) => ({
      outblob: signSnpReport(snpReport({ reportData: inblob, chipId: snp.chipId }), snp.vcek.privateKey),
      auxblob: encodeSnpCertTable([
        { certType: 'VCEK', data: snp.vcek.der },
        { certType: 'ASK', data: snp.ask.der },
        { certType: 'ARK', data: snp.ark.der },
      ]),
    }))
    const attester = createSnpAttester({ tsmRoot: kernel.root, fs: kernel })
    const evidence = JSON.parse(JSON.stringify(await attester.evidence(digest))) as Record<string, unknown>
    expect(Object.keys(evidence)).toEqual(['attestation_report', 'cert_chain'])
    expect((evidence.cert_chain as { cert_type: string }[]).map((c) => c.cert_type)).toEqual([
      'VCEK',
      'ASK',
      'ARK',
    ])
    const verifier = createSnpVerifier({
      vendor: await loadVendorCertificates([writePem(tmp.dir, 'ark.pem', snp.ark.pem)]),
    })
    const r = await verifier.verify(evidence, ctx)
    expect((r.claims as { report_data: string }).report_data).toBe(
      Buffer.concat([digest, Buffer.alloc(16)]).toString('hex'),
    )
    expect(await kernel.entries()).toEqual([]) // the request entry was removed
  })

  it("tdx: the attester's evidence (quote + CCEL) passes the tdx verifier", async () => {
    const ccel = buildCcel([{ mrIndex: 1, type: 0x80000001, data: Buffer.from('td-hob') }])
    const kernel = fakeTsm('tdx_guest', (inblob) => ({
      outblob: buildTdxQuote({ pck: tdx.pck, chainPem: tdx.chainPem, reportData: inblob, rtmr: ccel.rtmr }),
    }))
    const ccelPath = join(tmp.dir, 'CCEL')
    writeFileSync(ccelPath, ccel.log)
    const attester = createTdxAttester({ tsmRoot: kernel.root, fs: kernel, ccelPath })
    const evidence = (await attester.evidence(digest)) as { cc_eventlog: string; quote: string }
    expect(Buffer.from(evidence.cc_eventlog, 'base64').equals(ccel.log)).toBe(true)
    const verifier = createTdxVerifier({
      vendor: await loadVendorCertificates([writePem(tmp.dir, 'intel.pem', tdx.root.pem)]),
    })
    const r = await verifier.verify(evidence, ctx)
    expect((r.claims as { ccel: unknown[] }).ccel).toHaveLength(1)
    const noLog = createTdxAttester({ tsmRoot: kernel.root, fs: kernel, ccelPath: join(tmp.dir, 'none') })
    expect(((await noLog.evidence(digest)) as { cc_eventlog: unknown }).cc_eventlog).toBeNull()
  })
})

describe('requestTsmReport', () => {
  const ok = () => ({ outblob: Uint8Array.of(1, 2, 3) })

  it('writes the 64-byte inblob and returns outblob; no auxblob when the provider has none', async () => {
    let seen: Uint8Array | undefined
    const kernel = fakeTsm('tdx_guest', (inblob) => {
      seen = inblob
      return ok()
    })
    const inblob = new Uint8Array(64).fill(9)
    const r = await requestTsmReport(inblob, { provider: 'tdx_guest', root: kernel.root, fs: kernel })
    expect(r).toEqual({ provider: 'tdx_guest', outblob: Buffer.from([1, 2, 3]) })
    expect(Buffer.from(seen!).equals(Buffer.from(inblob))).toBe(true)
  })

  const failures: [string, () => ReturnType<typeof fakeTsm> | undefined, string?][] = [
    ['another provider', () => fakeTsm('sev_guest', ok)],
    ['a racing writer (generation moved by 2)', () => fakeTsm('tdx_guest', ok, { bump: 2 })],
    ['an empty outblob', () => fakeTsm('tdx_guest', () => ({ outblob: new Uint8Array(0) }))],
    ['an oversized outblob', () => fakeTsm('tdx_guest', () => ({ outblob: new Uint8Array(200 * 1024) }))],
    ['a missing configfs-tsm directory', () => undefined, join(tmp.dir, 'no-such-dir')],
  ]
  it.each(failures)(
    'fails with ERR_ATTEST_DEVICE_FAILED on %s and leaves no entry behind',
    async (_n, make, root) => {
      const k = make()
      const err = await requestTsmReport(new Uint8Array(64), {
        provider: 'tdx_guest',
        root: k?.root ?? root!,
        ...(k ? { fs: k } : {}),
      }).catch((e: unknown) => e)
      expect(isCofferError(err, 'ERR_ATTEST_DEVICE_FAILED'), String(err)).toBe(true)
      if (k) expect(await k.entries()).toEqual([])
    },
  )

  it('honours an aborted signal before touching configfs', async () => {
    const k = fakeTsm('tdx_guest', ok)
    const ac = new AbortController()
    ac.abort()
    const err = await requestTsmReport(new Uint8Array(64), {
      provider: 'tdx_guest',
      root: k.root,
      fs: k,
      signal: ac.signal,
    }).catch((e: unknown) => e)
    expect(isCofferError(err, 'ERR_CANCELED')).toBe(true)
    expect(await k.entries()).toEqual([])
  })
})

describe('SNP GHCB certificate table', () => {
  it('round-trips entries and maps the GUIDs virtee knows', () => {
    const entries = [
      { certType: 'VCEK' as const, data: Uint8Array.of(1, 2) },
      { certType: 'VLEK' as const, data: Uint8Array.of(3) },
      { certType: 'ASK' as const, data: Uint8Array.of(4, 5, 6) },
      { certType: 'ARK' as const, data: Uint8Array.of(7) },
    ]
    const table = encodeSnpCertTable(entries)
    // VCEK GUID 63da758d-e664-4564-adc5-f4b93be8accd, in string byte order.
    expect(Buffer.from(table.subarray(0, 16)).toString('hex')).toBe('63da758de6644564adc5f4b93be8accd')
    expect(parseSnpCertTable(table)).toEqual(entries)
  })

  it.each([
    [
      'no terminating entry',
      () => encodeSnpCertTable([{ certType: 'VCEK', data: Uint8Array.of(1) }]).subarray(0, 24),
    ],
    [
      'an entry past the table',
      () => {
        const t = encodeSnpCertTable([{ certType: 'VCEK', data: Uint8Array.of(1) }])
        new DataView(t.buffer).setUint32(20, 1000, true)
        return t
      },
    ],
    ['an empty buffer', () => new Uint8Array(0)],
  ])('rejects %s', (_n, make) => {
    expect(() => parseSnpCertTable(make())).toThrow(
      expect.objectContaining({ code: 'ERR_ATTEST_DEVICE_FAILED' }),
    )
  })
})

describe('snp/tdx plugin registrations', () => {
  const registry = createRegistry([
    snpVerifierPlugin,
    tdxVerifierPlugin,
    snpAttesterPlugin,
    tdxAttesterPlugin,
  ] as Registration<unknown, never>[])

  it('registers verifiers and attesters under their TEE names', () => {
    expect(registry.list(VERIFIER_POINT).map((r) => r.name)).toEqual(['snp', 'tdx'])
    expect(registry.list(ATTESTER_POINT).map((r) => r.name)).toEqual(['snp', 'tdx'])
  })

  it('a verifier built from settings verifies with the vendor roots it names', async () => {
    const tdx = makeTdxPki()
    const root = writePem(tmp.dir, 'plugin-intel.pem', tdx.root.pem)
    const v = registry
      .get<Verifier, Record<string, unknown>>(VERIFIER_POINT, 'tdx')
      .init({ vendorRoots: [root] })
    expect(v.tee).toBe('tdx')
    const quote = buildTdxQuote({
      pck: tdx.pck,
      chainPem: tdx.chainPem,
      reportData: Buffer.concat([digest, Buffer.alloc(16)]),
    })
    await expect(v.verify({ cc_eventlog: null, quote: quote.toString('base64') }, ctx)).resolves.toBeDefined()
    const missing = registry
      .get<Verifier, Record<string, unknown>>(VERIFIER_POINT, 'tdx')
      .init({ vendorRoots: [join(tmp.dir, 'nope.pem')] })
    await expect(missing.verify({ quote: quote.toString('base64') }, ctx)).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
    })
  })

  it.each([
    ['snp', { vendorRoots: [''] }],
    ['tdx', { vendorRoots: 7 }],
    ['tdx', { vendorRoots: ['a.pem'], extra: 1 }],
  ])('refuses %s verifier settings %j with ERR_CONFIG_INVALID', (name, settings) => {
    const r = registry.get<Verifier, Record<string, unknown>>(VERIFIER_POINT, name)
    expect(() => r.init(settings)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }))
  })

  it('builds without vendorRoots (the KBS builds every verifier) but then refuses all evidence', async () => {
    for (const name of ['snp', 'tdx']) {
      const v = registry.get<Verifier, Record<string, unknown>>(VERIFIER_POINT, name).init({})
      await expect(v.verify({}, ctx)).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID' })
    }
  })

  it('takes one vendor root path as a string', async () => {
    const tdx = makeTdxPki()
    const v = registry
      .get<Verifier, Record<string, unknown>>(VERIFIER_POINT, 'tdx')
      .init({ vendorRoots: writePem(tmp.dir, 'one-root.pem', tdx.root.pem) })
    const quote = buildTdxQuote({
      pck: tdx.pck,
      chainPem: tdx.chainPem,
      reportData: Buffer.concat([digest, Buffer.alloc(16)]),
    })
    await expect(v.verify({ quote: quote.toString('base64') }, ctx)).resolves.toBeDefined()
  })

  it("attesters take optional device and configfs paths and ignore other attesters' keys", async () => {
    const a = registry
      .get<Attester, Record<string, unknown>>(ATTESTER_POINT, 'snp')
      .init({ devicePath: join(tmp.dir, 'x'), tcti: 'swtpm:port=2321' })
    expect(a.tee).toBe('snp')
    expect(await a.detect()).toBe(false)
    expect(() =>
      registry.get<Attester, Record<string, unknown>>(ATTESTER_POINT, 'tdx').init({ tsmRoot: 5 }),
    ).toThrow(expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }))
  })
})
