/**
 * The jwe key wrapper against the reference: skopeo 1.9.3 (ocicrypt 1.0.3, go-jose v2), keys made
 * by openssl. Forward: skopeo encrypts, coffer unwraps its `enc.keys.jwe` annotations. Reverse:
 * coffer re-wraps the same private options into a skopeo-encrypted image's manifest and skopeo
 * decrypts that image; jose's strict decoders read coffer's JWEs too, and their headers have the
 * shape skopeo writes (spec §1.6).
 */
import { execFile } from 'node:child_process'
import { createPrivateKey } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { flattenedDecrypt, generalDecrypt, type FlattenedJWE, type GeneralJWE } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DecryptConfig, EncryptConfig } from '../../lib/crypt/keywrap.js'
import { parsePublicKey } from '../../lib/crypt/keys.js'
import { createJweKeyWrapper, JWE_ANNOTATION } from '../../plugins/keywrap/jwe/index.js'
import { makeSampleLayout, skopeo, type SampleImage } from '../helpers/skopeo.js'
import { expectDecryptFailed } from '../suites/keywrap.js'
import {
  annotationElements,
  expectPrivateOptions,
  manifestOf,
  type Json,
  type Manifest,
  editedLayoutCopy,
  expectDecryptedTo,
} from '../helpers/encrypted-layout.js'

const execFileP = promisify(execFile)
const PASSWORD = 'interop pw'

/** This scheme's wrapped-key elements, per layer. */
const jweElements = (m: Manifest): Buffer[][] => annotationElements(m, JWE_ANNOTATION)

let work: string
let sample: SampleImage
const file = (name: string): string => join(work, name)
const w = createJweKeyWrapper()

async function openssl(args: string[]): Promise<void> {
  await execFileP('openssl', args, { cwd: work })
}

const pubkeys = (...names: string[]): Promise<EncryptConfig> =>
  Promise.all(names.map((n) => readFile(file(n)))).then((pubkeys) => ({ pubkeys }))
async function privkeys(...entries: (string | [string, string])[]): Promise<DecryptConfig> {
  const pairs = entries.map((e) => (typeof e === 'string' ? [e, ''] : e))
  return {
    privkeys: await Promise.all(pairs.map(([n]) => readFile(file(n!)))),
    privkeysPasswords: pairs.map(([, pw]) => Buffer.from(pw!)),
  }
}

const headerOf = (b64u: unknown): Json =>
  JSON.parse(Buffer.from(b64u as string, 'base64url').toString()) as Json
const sortedKeys = (o: unknown): string[] => Object.keys(o as Json).sort()

/** skopeo-encrypted images, by recipient set; made once in beforeAll. */
const ENCRYPTED = {
  rsa: ['rsa.pub.pem'],
  ec: ['ec.pub.pem'],
  both: ['rsa.pub.pem', 'ec.pub.pem'],
} as const
type Case = keyof typeof ENCRYPTED

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-jwe-skopeo-'))
  // === keys, as a user would make them (PKCS#8 PEM private, PKIX PEM public)
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa.key.pem'])
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ec.key.pem'])
  await openssl(['pkey', '-in', 'rsa.key.pem', '-pubout', '-out', 'rsa.pub.pem'])
  await openssl(['pkey', '-in', 'ec.key.pem', '-pubout', '-out', 'ec.pub.pem'])
  // An unrelated key, for the wrong-key checks.
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'other.key.pem'])
  // === the same keys in the other encodings ocicrypt users have
  await openssl(['rsa', '-in', 'rsa.key.pem', '-traditional', '-out', 'rsa.pkcs1.pem'])
  await openssl(['ec', '-in', 'ec.key.pem', '-out', 'ec.sec1.pem'])
  await openssl([
    'pkcs8',
    '-topk8',
    '-in',
    'rsa.key.pem',
    '-v2',
    'aes-256-cbc',
    '-passout',
    `pass:${PASSWORD}`,
    '-out',
    'rsa.enc.pem',
  ])
  await openssl(['pkey', '-in', 'ec.key.pem', '-outform', 'DER', '-out', 'ec.key.der'])
  await openssl(['rsa', '-in', 'rsa.key.pem', '-RSAPublicKey_out', '-out', 'rsa.pkcs1.pub.pem'])

  // === a plain image, encrypted by skopeo for each recipient set
  sample = await makeSampleLayout(file('src'), 'v1', { layers: 2 })
  await Promise.all(
    Object.entries(ENCRYPTED).map(([name, pubs]) =>
      skopeo([
        'copy',
        ...pubs.flatMap((p) => ['--encryption-key', `jwe:${file(p)}`]),
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
  it('one RSA recipient: flattened JSON with {alg: RSA-OAEP, enc: A256GCM} protected', async () => {
    const m = await manifestOf(file('enc-rsa'))
    for (const [i, elements] of annotationElements(m, JWE_ANNOTATION).entries()) {
      expect(m.layers[i]!.mediaType).toMatch(/\+encrypted$/)
      expect(elements).toHaveLength(1)
      const jwe = JSON.parse(elements[0]!.toString()) as Json
      expect(sortedKeys(jwe)).toEqual(['ciphertext', 'encrypted_key', 'iv', 'protected', 'tag'])
      expect(headerOf(jwe.protected)).toEqual({ alg: 'RSA-OAEP', enc: 'A256GCM' })
      expectPrivateOptions(
        await w.unwrapKey(await privkeys('rsa.key.pem'), elements[0]!),
        sample.layers[i]!.digest,
      )
      await expectDecryptFailed(w.unwrapKey(await privkeys('other.key.pem', 'ec.key.pem'), elements[0]!))
    }
  })

  it('one EC P-256 recipient: ECDH-ES+A256KW, epk {kty, crv, x, y} in the protected header', async () => {
    const m = await manifestOf(file('enc-ec'))
    for (const [i, [element]] of annotationElements(m, JWE_ANNOTATION).entries()) {
      const jwe = JSON.parse(element!.toString()) as Json
      const header = headerOf(jwe.protected)
      expect(sortedKeys(header)).toEqual(['alg', 'enc', 'epk'])
      expect(header).toMatchObject({
        alg: 'ECDH-ES+A256KW',
        enc: 'A256GCM',
        epk: { kty: 'EC', crv: 'P-256' },
      })
      expect(sortedKeys(header.epk)).toEqual(['crv', 'kty', 'x', 'y'])
      expectPrivateOptions(
        await w.unwrapKey(await privkeys('ec.key.pem'), element!),
        sample.layers[i]!.digest,
      )
      await expectDecryptFailed(w.unwrapKey(await privkeys('rsa.key.pem'), element!))
    }
  })

  it("two recipients: general JSON with go-jose's extra top-level encrypted_key; either key unwraps", async () => {
    const m = await manifestOf(file('enc-both'))
    for (const [i, elements] of annotationElements(m, JWE_ANNOTATION).entries()) {
      // One JWE for all recipients, not one annotation element each (spec §1.2).
      expect(elements).toHaveLength(1)
      const jwe = JSON.parse(elements[0]!.toString()) as Json & { recipients: Json[] }
      expect(sortedKeys(jwe)).toEqual(['ciphertext', 'encrypted_key', 'iv', 'protected', 'recipients', 'tag'])
      expect(headerOf(jwe.protected)).toEqual({ enc: 'A256GCM' })
      expect(jwe.recipients.map((r) => (r.header as Json).alg)).toEqual(['RSA-OAEP', 'ECDH-ES+A256KW'])
      expect(jwe.encrypted_key).toBe(jwe.recipients[0]!.encrypted_key)
      for (const key of ['rsa.key.pem', 'ec.key.pem']) {
        expectPrivateOptions(await w.unwrapKey(await privkeys(key), elements[0]!), sample.layers[i]!.digest)
      }
      await expectDecryptFailed(w.unwrapKey(await privkeys('other.key.pem'), elements[0]!))
    }
  })

  it('unwraps with the keys in every encoding openssl writes: PKCS#1, SEC1, encrypted PKCS#8, DER', async () => {
    const [rsaJwe] = jweElements(await manifestOf(file('enc-rsa')))[0]!
    const [ecJwe] = jweElements(await manifestOf(file('enc-ec')))[0]!
    const digest = sample.layers[0]!.digest
    expectPrivateOptions(await w.unwrapKey(await privkeys('rsa.pkcs1.pem'), rsaJwe!), digest)
    expectPrivateOptions(await w.unwrapKey(await privkeys(['rsa.enc.pem', PASSWORD]), rsaJwe!), digest)
    expectPrivateOptions(await w.unwrapKey(await privkeys('ec.sec1.pem'), ecJwe!), digest)
    expectPrivateOptions(await w.unwrapKey(await privkeys('ec.key.der'), ecJwe!), digest)
    const err = await w.unwrapKey(await privkeys(['rsa.enc.pem', 'not it']), rsaJwe!).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_CRYPT_KEY_INVALID' })
  })

  it('refuses a PKCS#1 "RSA PUBLIC KEY" recipient, as skopeo does', async () => {
    const pkcs1 = await readFile(file('rsa.pkcs1.pub.pem'))
    await expect(parsePublicKey(pkcs1, 'rsa.pkcs1.pub.pem')).rejects.toMatchObject({
      code: 'ERR_CRYPT_KEY_INVALID',
    })
    await expect(
      skopeo([
        'copy',
        '--encryption-key',
        `jwe:${file('rsa.pkcs1.pub.pem')}`,
        `oci:${file('src')}:v1`,
        `oci:${file('enc-pkcs1')}:v1`,
      ]),
    ).rejects.toThrow()
  })
})

describe('coffer wraps, skopeo unwraps', () => {
  /**
   * Replaces each layer's jwe annotation in a copy of a skopeo-encrypted image with coffer's
   * wrapping of the same private options for `recipients`, leaving ciphertext and pubopts alone.
   * The single-recipient cases re-wrap for the *other* key, so only coffer's JWE can open them.
   */
  async function rewrap(
    c: Case,
    recipients: EncryptConfig,
    keysOffered: DecryptConfig,
  ): Promise<{ dir: string; ours: Json[] }> {
    const dir = file(`ours-from-${c}-${(recipients.pubkeys ?? []).length}`)
    const ours: Json[] = []
    await editedLayoutCopy(file(`enc-${c}`), dir, async (m) => {
      for (const [i, [theirs]] of annotationElements(m, JWE_ANNOTATION).entries()) {
        const options = await w.unwrapKey(keysOffered, theirs!)
        const wrapped = await w.wrapKeys(recipients, options)
        ours.push(JSON.parse(Buffer.from(wrapped).toString()) as Json)
        m.layers[i]!.annotations![JWE_ANNOTATION] = Buffer.from(wrapped).toString('base64')
      }
    })
    return { dir, ours }
  }

  /** skopeo decrypts the rewrapped image; the layers come back bit for bit (spec §1.5). */
  async function skopeoDecrypts(dir: string, key: string): Promise<void> {
    const out = `${dir}-dec-${key}`
    await skopeo(['copy', '--decryption-key', file(key), `oci:${dir}:v1`, `oci:${out}:v1`])
    await expectDecryptedTo(out, sample.layers, JWE_ANNOTATION)
  }

  it('one RSA recipient (an image skopeo encrypted for the EC key)', async () => {
    const { dir, ours } = await rewrap('ec', await pubkeys('rsa.pub.pem'), await privkeys('ec.key.pem'))
    await skopeoDecrypts(dir, 'rsa.key.pem')
    await expect(skopeoDecrypts(dir, 'ec.key.pem')).rejects.toThrow(/skopeo copy .* failed/)
    const [theirs] = jweElements(await manifestOf(file('enc-rsa')))[0]!
    expectSameShape(ours[0]!, JSON.parse(theirs!.toString()) as Json)
    const key = createPrivateKey(await readFile(file('rsa.key.pem')))
    const strict = { keyManagementAlgorithms: ['RSA-OAEP'], contentEncryptionAlgorithms: ['A256GCM'] }
    for (const [i, jwe] of ours.entries()) {
      const { plaintext } = await flattenedDecrypt(jwe as unknown as FlattenedJWE, key, strict)
      expectPrivateOptions(plaintext, sample.layers[i]!.digest)
    }
  })

  it('one EC P-256 recipient (an image skopeo encrypted for the RSA key)', async () => {
    const { dir, ours } = await rewrap('rsa', await pubkeys('ec.pub.pem'), await privkeys('rsa.key.pem'))
    await skopeoDecrypts(dir, 'ec.key.pem')
    await expect(skopeoDecrypts(dir, 'rsa.key.pem')).rejects.toThrow(/skopeo copy .* failed/)
    const [theirs] = jweElements(await manifestOf(file('enc-ec')))[0]!
    expectSameShape(ours[0]!, JSON.parse(theirs!.toString()) as Json)
    const key = createPrivateKey(await readFile(file('ec.key.pem')))
    const strict = { keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'] }
    for (const [i, jwe] of ours.entries()) {
      const { plaintext } = await flattenedDecrypt(jwe as unknown as FlattenedJWE, key, strict)
      expectPrivateOptions(plaintext, sample.layers[i]!.digest)
    }
  })

  it('two recipients: skopeo decrypts with either key', async () => {
    const both = await pubkeys('rsa.pub.pem', 'ec.pub.pem')
    const { dir, ours } = await rewrap('both', both, await privkeys('rsa.key.pem'))
    await skopeoDecrypts(dir, 'rsa.key.pem')
    await skopeoDecrypts(dir, 'ec.key.pem')
    const [theirs] = jweElements(await manifestOf(file('enc-both')))[0]!
    expectSameShape(ours[0]!, JSON.parse(theirs!.toString()) as Json)
    const strict = {
      keyManagementAlgorithms: ['RSA-OAEP', 'ECDH-ES+A256KW'],
      contentEncryptionAlgorithms: ['A256GCM'],
    }
    for (const name of ['rsa.key.pem', 'ec.key.pem']) {
      const key = createPrivateKey(await readFile(file(name)))
      for (const [i, jwe] of ours.entries()) {
        const { plaintext } = await generalDecrypt(jwe as unknown as GeneralJWE, key, strict)
        expectPrivateOptions(plaintext, sample.layers[i]!.digest)
      }
    }
  })
})

/**
 * Same members at every level as skopeo's JWE, the same alg/enc values, and the same epk members;
 * only go-jose's duplicate top-level encrypted_key in general JSON is left out on purpose.
 */
function expectSameShape(ours: Json, theirs: Json): void {
  const top = (j: Json) => sortedKeys(j).filter((k) => !(k === 'encrypted_key' && 'recipients' in j))
  expect(top(ours)).toEqual(top(theirs))
  const ph = [headerOf(ours.protected), headerOf(theirs.protected)] as const
  expect(sortedKeys(ph[0])).toEqual(sortedKeys(ph[1]))
  expect([ph[0].alg, ph[0].enc]).toEqual([ph[1].alg, ph[1].enc])
  if (ph[1].epk) expect(sortedKeys(ph[0].epk)).toEqual(sortedKeys(ph[1].epk))
  const recipients = (j: Json) => (j.recipients as Json[] | undefined) ?? []
  expect(recipients(ours)).toHaveLength(recipients(theirs).length)
  for (const [i, r] of recipients(theirs).entries()) {
    const mine = recipients(ours)[i]!
    expect(sortedKeys(mine)).toEqual(sortedKeys(r))
    const [h, g] = [mine.header as Json, r.header as Json]
    expect(sortedKeys(h)).toEqual(sortedKeys(g))
    expect(h.alg).toBe(g.alg)
    if (g.epk) expect(sortedKeys(h.epk)).toEqual(sortedKeys(g.epk))
  }
}
