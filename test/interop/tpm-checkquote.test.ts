/**
 * coffer's tpm evidence against tpm2-tools' own quote checker, `tpm2_checkquote`, an independent
 * implementation of the same checks (signature over TPMS_ATTEST, pcrDigest over the PCR values,
 * qualifying data). Both directions: evidence from the coffer attester on swtpm, and the
 * hand-marshalled "software" quotes the unit tests use, so neither side's marshalling can drift
 * unnoticed. Each tampered variant must fail in both checkers.
 */
import { execFile } from 'node:child_process'
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TpmEvidence } from '../../lib/attest/tpm/evidence.js'
import { provisionAk } from '../../lib/attest/tpm/provision.js'
import { plugin as attesterPlugin } from '../../plugins/attester/tpm/index.js'
import { plugin as verifierPlugin } from '../../plugins/verifier/tpm/index.js'
import { startSwtpm, type Swtpm } from '../helpers/swtpm.js'
import { softwareEvidence } from '../helpers/tpm-quote.js'

const execFileP = promisify(execFile)
const verifier = verifierPlugin.init({})

let dir: string
let tpm: Swtpm
let n = 0

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-checkquote-'))
  tpm = await startSwtpm()
  await provisionAk({ tcti: tpm.tcti })
  await provisionAk({ tcti: tpm.tcti }, { akHandle: 0x81010003, keyType: 'ecc' })
})
afterAll(async () => {
  await tpm?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** Runs tpm2_checkquote on the evidence's parts; true when it accepts them. */
/**
 * The PCRs quoted here: one to three per bitmap byte. Not all 24: tpm2_checkquote 5.4 fails
 * ("Failed to hash PCR values related to quote!") on PCR values in the raw `values` format, even
 * its own tpm2_quote's, once 8 or more PCRs are selected; 7 work. The 24-PCR digest is checked
 * against real quotes in test/integration/tpm.test.ts.
 */
const SELECTION = [0, 7, 8, 11, 16, 22, 23]
const SELECTION_ARG = `sha256:${SELECTION.join(',')}`

async function checkquote(ev: TpmEvidence, qualifying: Uint8Array, pcrs = SELECTION_ARG): Promise<boolean> {
  const d = join(dir, String(n++))
  const pem = createPublicKey({
    key: Buffer.from(ev.ak_public, 'base64'),
    format: 'der',
    type: 'spki',
  }).export({
    format: 'pem',
    type: 'spki',
  })
  await Promise.all([
    writeFile(`${d}.pem`, pem),
    writeFile(`${d}.msg`, Buffer.from(ev.tpm_quote.message, 'base64')),
    writeFile(`${d}.sig`, Buffer.from(ev.tpm_quote.signature, 'base64')),
    writeFile(`${d}.pcrs`, Buffer.concat(ev.tpm_quote.pcrs.map((p) => Buffer.from(p, 'hex')))),
  ])
  const args = [
    '-u',
    `${d}.pem`,
    '-m',
    `${d}.msg`,
    '-s',
    `${d}.sig`,
    '-f',
    `${d}.pcrs`,
    '-l',
    pcrs,
    '-g',
    'sha256',
  ]
  args.push('-q', Buffer.from(qualifying).toString('hex'))
  try {
    await execFileP('tpm2_checkquote', args, { timeout: 30_000 })
    return true
  } catch (err) {
    const e = err as { code?: unknown; stderr?: string }
    // A missing tool must fail the test, not read as "rejected".
    if (e.code === 'ENOENT') throw err
    return false
  }
}

async function cofferAccepts(ev: TpmEvidence, reportData: Uint8Array): Promise<boolean> {
  return verifier.verify(ev, { reportData, referenceValues: { get: () => undefined } }).then(
    () => true,
    () => false,
  )
}

function flip(b64: string, at: number): string {
  const b = Buffer.from(b64, 'base64')
  const i = at < 0 ? b.length + at : at
  b[i] = b[i]! ^ 0x01
  return b.toString('base64')
}

function variants(ev: TpmEvidence): [string, TpmEvidence][] {
  const q = ev.tpm_quote
  const pcrs = [...q.pcrs]
  pcrs[pcrs.length - 1] = (pcrs.at(-1)![0] === 'f' ? 'e' : 'f') + pcrs.at(-1)!.slice(1)
  return [
    ['message', { ...ev, tpm_quote: { ...q, message: flip(q.message, -1) } }],
    ['signature', { ...ev, tpm_quote: { ...q, signature: flip(q.signature, -1) } }],
    ['PCR value', { ...ev, tpm_quote: { ...q, pcrs } }],
  ]
}

describe('tpm evidence vs tpm2_checkquote', () => {
  for (const [label, handle] of [
    ['RSASSA', 0x81010002],
    ['ECDSA P-256', 0x81010003],
  ] as const) {
    it(`a ${label} quote from the coffer attester passes tpm2_checkquote; tampered ones fail both`, async () => {
      const rd = createHash('sha384').update(label).digest()
      const ev = (await attesterPlugin
        .init({ tcti: tpm.tcti, akHandle: handle, pcrs: SELECTION })
        .evidence(rd)) as TpmEvidence
      const qualifying = rd.subarray(0, 32)
      expect(await checkquote(ev, qualifying)).toBe(true)
      expect(await cofferAccepts(ev, rd)).toBe(true)
      // the wrong nonce: both refuse
      expect(await checkquote(ev, Buffer.alloc(32))).toBe(false)
      expect(await cofferAccepts(ev, Buffer.alloc(32))).toBe(false)
      for (const [what, bad] of variants(ev)) {
        expect([what, await checkquote(bad, qualifying)]).toEqual([what, false])
        expect([what, await cofferAccepts(bad, rd)]).toEqual([what, false])
      }
    })
  }

  // Not rsapss: tpm2_checkquote 5.4 verifies RSAPSS with the maximum salt length (222 bytes for
  // RSA-2048/SHA-256), while swtpm, like TPMs following FIPS 186-4, signs with a salt as long as
  // the digest (32), so it rejects real swtpm RSAPSS quotes too. coffer accepts either salt length;
  // its RSAPSS path is tested against swtpm in test/integration/tpm.test.ts.
  for (const scheme of ['rsassa', 'ecdsa'] as const) {
    it(`the unit tests' hand-marshalled ${scheme} quotes are valid quotes to tpm2_checkquote`, async () => {
      const keys =
        scheme === 'ecdsa'
          ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
          : generateKeyPairSync('rsa', { modulusLength: 2048 })
      const extraData = createHash('sha256').update(scheme).digest()
      const pcrValues = SELECTION.map((i) => createHash('sha256').update(`pcr ${i}`).digest())
      const ev = softwareEvidence({
        ...keys,
        scheme,
        extraData,
        pcrValues,
        fields: { selections: [{ hashAlg: 0x000b, pcrs: SELECTION }] },
      })
      expect(await checkquote(ev, extraData)).toBe(true)
      expect(await cofferAccepts(ev, extraData)).toBe(true)
      for (const [what, bad] of variants(ev)) {
        expect([what, await checkquote(bad, extraData)]).toEqual([what, false])
      }
    })
  }
})
