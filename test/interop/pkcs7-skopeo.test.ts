/**
 * The pkcs7 key wrapper against the reference: skopeo 1.9.3 (ocicrypt 1.0.3, go.mozilla.org/pkcs7),
 * certificates made by `openssl req -x509`. Forward: skopeo encrypts, coffer unwraps its
 * `enc.keys.pkcs7` annotations. Reverse: coffer re-wraps the same private options into a
 * skopeo-encrypted image's manifest and skopeo decrypts that image with key and certificate
 * (spec §1.6, §1.7). coffer's DER has the same structure as skopeo's, down to the odd GCM
 * parameters (plugins/keywrap/pkcs7/cms.ts).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decryptionStep } from '../../lib/crypt/decrypt-step.js'
import { encryptionStep } from '../../lib/crypt/encrypt-step.js'
import type { DecryptConfig, EncryptConfig } from '../../lib/crypt/keywrap.js'
import { copyImage } from '../../lib/oci/copy.js'
import { openLayoutDestination } from '../../lib/oci/layout/layout-destination.js'
import { openLayoutSource } from '../../lib/oci/layout/layout-source.js'
import { createPkcs7KeyWrapper, PKCS7_ANNOTATION } from '../../plugins/keywrap/pkcs7/pkcs7-keywrap.js'
import { makeSampleLayout, skopeo, type SampleImage } from '../helpers/skopeo.js'
import { expectDecryptFailed } from '../suites/keywrap.js'
import {
  annotationElements,
  expectPrivateOptions,
  manifestOf,
  type Manifest,
  editedLayoutCopy,
  expectDecryptedTo,
} from '../helpers/encrypted-layout.js'

const execFileP = promisify(execFile)

/** This scheme's wrapped-key elements, per layer. */
const pkcs7Elements = (m: Manifest): Buffer[][] => annotationElements(m, PKCS7_ANNOTATION)

let work: string
let sample: SampleImage
const file = (name: string): string => join(work, name)
const w = createPkcs7KeyWrapper()

async function openssl(args: string[]): Promise<string> {
  return (await execFileP('openssl', args, { cwd: work })).stdout
}

const certs = (...names: string[]): Promise<EncryptConfig> =>
  Promise.all(names.map((n) => readFile(file(n)))).then((x509s) => ({ x509s }))
/** `--decryption-key key --decryption-key cert` for each pair, as ocicrypt sorts them (spec §1.7). */
async function keysAndCerts(...pairs: [key: string, cert: string][]): Promise<DecryptConfig> {
  return {
    privkeys: await Promise.all(pairs.map(([k]) => readFile(file(k)))),
    privkeysPasswords: pairs.map(() => Buffer.alloc(0)),
    x509s: await Promise.all(pairs.map(([, c]) => readFile(file(c)))),
  }
}

/**
 * `openssl asn1parse` of a DER blob with the varying bytes (hex dumps, i.e. encrypted key and
 * ciphertext) cut off: the structure, tags and lengths. Serial numbers and names stay.
 */
async function structureOf(der: Buffer, name: string): Promise<string[]> {
  await writeFile(file(name), der)
  const out = await openssl(['asn1parse', '-inform', 'DER', '-in', name])
  return out
    .trim()
    .split('\n')
    .map((l) => l.replace(/\[HEX DUMP\]:[0-9A-F]+/, '[HEX DUMP]').trimEnd())
}

/** The raw GCM parameters TLV: 0x10-tagged, holding SEQUENCE { [4] nonce, INTEGER 16 } (cms.ts). */
function gcmParametersOf(der: Buffer): Buffer {
  const oid = Buffer.from('060960864801650304010610', 'hex') // aes128-GCM, then the parameters' tag
  const at = der.indexOf(oid)
  expect(at).toBeGreaterThan(0)
  return der.subarray(at + oid.length - 1, at + oid.length - 1 + 21)
}

const ENCRYPTED = {
  a: ['a.crt'],
  both: ['a.crt', 'b.crt'],
} as const
type Case = keyof typeof ENCRYPTED

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-pkcs7-skopeo-'))
  // === self-signed RSA certificates, as a user would make them
  for (const n of ['a', 'b', 'other']) {
    await openssl(
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=coffer ${n}/O=interop`].concat([
        '-days',
        '2',
        '-keyout',
        `${n}.key`,
        '-out',
        `${n}.crt`,
      ]),
    )
  }
  // === the same material in the other encodings ocicrypt reads
  await openssl(['x509', '-in', 'a.crt', '-outform', 'DER', '-out', 'a.crt.der'])
  await openssl(['rsa', '-in', 'a.key', '-traditional', '-out', 'a.pkcs1.key'])

  // === a plain image, encrypted by skopeo for each recipient set
  sample = await makeSampleLayout(file('src'), 'v1', { layers: 2 })
  await Promise.all(
    Object.entries(ENCRYPTED).map(([name, crts]) =>
      skopeo([
        'copy',
        ...crts.flatMap((c) => ['--encryption-key', `pkcs7:${file(c)}`]),
        `oci:${file('src')}:v1`,
        `oci:${file(`enc-${name}`)}:v1`,
      ]),
    ),
  )
})
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true })
})

describe('skopeo encrypts, coffer unwraps', () => {
  it('one recipient: EnvelopedData v0, rsaEncryption, aes-128-gcm with Go-shaped parameters, ciphertext||tag', async () => {
    const m = await manifestOf(file('enc-a'))
    for (const [i, elements] of annotationElements(m, PKCS7_ANNOTATION).entries()) {
      expect(m.layers[i]!.mediaType).toMatch(/\+encrypted$/)
      expect(elements).toHaveLength(1)
      const der = elements[0]!
      const structure = await structureOf(der, `theirs-a-${i}.der`)
      expect(structure.join('\n')).toMatch(
        /pkcs7-envelopedData[\s\S]*rsaEncryption[\s\S]*pkcs7-data[\s\S]*aes-128-gcm/,
      )
      // go.mozilla.org/pkcs7: 10 13 30 11 84 0c <nonce> 02 01 10
      const params = gcmParametersOf(der)
      expect(params.subarray(0, 6).toString('hex')).toBe('10133011840c')
      expect(params.subarray(18).toString('hex')).toBe('020110')
      // [0] constructed { OCTET STRING (options || 16-byte tag) }
      const plain = await w.unwrapKey(await keysAndCerts(['a.key', 'a.crt']), der)
      expectPrivateOptions(plain, sample.layers[i]!.digest)
      const sealed = plain.byteLength + 16
      expect(der.subarray(der.length - sealed - 6, der.length - sealed).toString('hex')).toBe(
        `a081${(sealed + 3).toString(16)}0481${sealed.toString(16)}`,
      )
      expect(der.length).toBe(der.indexOf(Buffer.from(`0481${sealed.toString(16)}`, 'hex')) + 3 + sealed)
      // Wrong key, key without its certificate, certificate with another key: the fixed failure.
      await expectDecryptFailed(w.unwrapKey(await keysAndCerts(['other.key', 'other.crt']), der))
      await expectDecryptFailed(
        w.unwrapKey(
          { privkeys: [await readFile(file('a.key'))], x509s: [await readFile(file('b.crt'))] },
          der,
        ),
      )
      await expectDecryptFailed(
        w.unwrapKey(
          { privkeys: [await readFile(file('b.key'))], x509s: [await readFile(file('a.crt'))] },
          der,
        ),
      )
      expect(w.noPossibleKeys({ privkeys: [await readFile(file('a.key'))] })).toBe(true)
    }
  })

  it('two recipients: one EnvelopedData, RecipientInfos DER-sorted, either key unwraps', async () => {
    const m = await manifestOf(file('enc-both'))
    for (const [i, elements] of annotationElements(m, PKCS7_ANNOTATION).entries()) {
      expect(elements).toHaveLength(1)
      for (const n of ['a', 'b']) {
        expectPrivateOptions(
          await w.unwrapKey(await keysAndCerts([`${n}.key`, `${n}.crt`]), elements[0]!),
          sample.layers[i]!.digest,
        )
      }
      await expectDecryptFailed(w.unwrapKey(await keysAndCerts(['other.key', 'other.crt']), elements[0]!))
    }
  })

  it('unwraps with a DER certificate and a PKCS#1 key', async () => {
    const [der] = pkcs7Elements(await manifestOf(file('enc-a')))[0]!
    expectPrivateOptions(
      await w.unwrapKey(await keysAndCerts(['a.pkcs1.key', 'a.crt.der']), der!),
      sample.layers[0]!.digest,
    )
  })

  it("OpenSSL cannot read skopeo's EnvelopedData (the GCM parameters), nor ours", async () => {
    const [theirs] = pkcs7Elements(await manifestOf(file('enc-a')))[0]!
    const ours = Buffer.from(await w.wrapKeys(await certs('a.crt'), Buffer.from('{}')))
    for (const [name, der] of [
      ['theirs.der', theirs!],
      ['ours.der', ours],
    ] as const) {
      await writeFile(file(name), der)
      await expect(
        openssl(['cms', '-decrypt', '-inform', 'DER', '-in', name, '-inkey', 'a.key', '-recip', 'a.crt']),
      ).rejects.toThrow()
    }
  })
})

describe('coffer wraps, skopeo unwraps', () => {
  /**
   * Replaces each layer's pkcs7 annotation in a copy of a skopeo-encrypted image with coffer's
   * wrapping of the same private options for `recipients`, leaving ciphertext and pubopts alone.
   */
  async function rewrap(
    c: Case,
    recipients: EncryptConfig,
    label: string,
  ): Promise<{ dir: string; ours: Buffer[] }> {
    const dir = file(`ours-${label}`)
    const ours: Buffer[] = []
    await editedLayoutCopy(file(`enc-${c}`), dir, async (m) => {
      for (const [i, [theirs]] of annotationElements(m, PKCS7_ANNOTATION).entries()) {
        const options = await w.unwrapKey(await keysAndCerts(['a.key', 'a.crt']), theirs!)
        const wrapped = Buffer.from(await w.wrapKeys(recipients, options))
        ours.push(wrapped)
        m.layers[i]!.annotations![PKCS7_ANNOTATION] = wrapped.toString('base64')
      }
    })
    return { dir, ours }
  }

  /** skopeo decrypts the rewrapped image with key and cert; the layers come back bit for bit (spec §1.5). */
  async function skopeoDecrypts(dir: string, n: string): Promise<void> {
    const out = `${dir}-dec-${n}`
    await skopeo([
      'copy',
      '--decryption-key',
      file(`${n}.key`),
      '--decryption-key',
      file(`${n}.crt`),
      `oci:${dir}:v1`,
      `oci:${out}:v1`,
    ])
    await expectDecryptedTo(out, sample.layers, PKCS7_ANNOTATION)
  }

  it('one recipient (an image skopeo encrypted for a, re-wrapped for b only)', async () => {
    const { dir, ours } = await rewrap('a', await certs('b.crt'), 'b')
    await skopeoDecrypts(dir, 'b')
    await expect(skopeoDecrypts(dir, 'a')).rejects.toThrow(/skopeo copy .* failed/)
    // Same DER structure as skopeo's for the same recipient: tags, lengths, names, serials.
    const [theirsForA] = pkcs7Elements(await manifestOf(file('enc-a')))[0]!
    const [oursForA] = (await rewrap('a', await certs('a.crt'), 'a')).ours
    expect(await structureOf(oursForA!, 'ours-a.der')).toEqual(await structureOf(theirsForA!, 'theirs-a.der'))
    expect(gcmParametersOf(ours[0]!).subarray(0, 6)).toEqual(gcmParametersOf(theirsForA!).subarray(0, 6))
  })

  it('two recipients: skopeo decrypts with either key; same structure as skopeo writes', async () => {
    const { dir, ours } = await rewrap('both', await certs('b.crt', 'a.crt'), 'both')
    await skopeoDecrypts(dir, 'a')
    await skopeoDecrypts(dir, 'b')
    const [theirs] = pkcs7Elements(await manifestOf(file('enc-both')))[0]!
    // Recipients given in the other order still come out DER-sorted, as Go's encoding/asn1 writes SET OF.
    expect(await structureOf(ours[0]!, 'ours-both.der')).toEqual(
      await structureOf(theirs!, 'theirs-both.der'),
    )
  })

  it('skopeo refuses our wrapping without the certificate, as it does its own', async () => {
    const { dir } = await rewrap('a', await certs('b.crt'), 'b-nocert')
    await expect(
      skopeo(['copy', '--decryption-key', file('b.key'), `oci:${dir}:v1`, `oci:${dir}-dec:v1`]),
    ).rejects.toThrow(/skopeo copy .* failed/)
  })
})

/**
 * The whole pipeline through lib APIs (the CLI wiring of `pkcs7:` comes separately): coffer's
 * encryption step with the pkcs7 wrapper, skopeo decrypts; skopeo encrypts, coffer's decryption
 * step gets the original layers back.
 */
describe('end to end: copyImage with the pkcs7 wrapper', () => {
  it('coffer encrypts for two certificates; skopeo decrypts with either key and its certificate', async () => {
    const dir = file('coffer-enc')
    await copyImage(await openLayoutSource(file('src'), 'v1'), await openLayoutDestination(dir, 'v1'), {
      layerTransform: encryptionStep({ wrappers: [w], config: await certs('a.crt', 'b.crt') }),
    })
    const m = await manifestOf(dir)
    for (const l of m.layers) {
      expect(l.mediaType).toMatch(/\+encrypted$/)
      expect(Object.keys(l.annotations ?? {}).sort()).toEqual([
        PKCS7_ANNOTATION,
        'org.opencontainers.image.enc.pubopts',
      ])
    }
    for (const n of ['a', 'b']) {
      const out = file(`coffer-enc-skopeo-dec-${n}`)
      await skopeo(
        ['copy', '--decryption-key', file(`${n}.key`), '--decryption-key', file(`${n}.crt`)].concat([
          `oci:${dir}:v1`,
          `oci:${out}:v1`,
        ]),
      )
      const back = await manifestOf(out)
      expect(back.layers.map((l) => [l.mediaType, l.digest])).toEqual(
        sample.layers.map((l) => [l.mediaType, l.digest]),
      )
    }
  })

  it('skopeo encrypts; coffer decrypts with key and certificate, and refuses a wrong key', async () => {
    const out = file('coffer-dec')
    await copyImage(await openLayoutSource(file('enc-both'), 'v1'), await openLayoutDestination(out, 'v1'), {
      layerTransform: decryptionStep({ wrappers: [w], config: await keysAndCerts(['b.key', 'b.crt']) }),
    })
    const back = await manifestOf(out)
    expect(back.layers.map((l) => [l.mediaType, l.digest])).toEqual(
      sample.layers.map((l) => [l.mediaType, l.digest]),
    )
    expect(back.layers.every((l) => l.annotations === undefined)).toBe(true)
    const wrong = copyImage(
      await openLayoutSource(file('enc-both'), 'v1'),
      await openLayoutDestination(file('coffer-dec-wrong'), 'v1'),
      {
        layerTransform: decryptionStep({
          wrappers: [w],
          config: await keysAndCerts(['other.key', 'other.crt']),
        }),
      },
    )
    await expect(wrong).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_CRYPT_/) })
  })
})
