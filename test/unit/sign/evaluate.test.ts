/**
 * The policy evaluator, table-driven over every signature requirement form (signedBy with keyPath,
 * keyPaths, keyData; sigstoreSigned with keyPath, keyPaths, keyData, keyDatas): accept by tag and by
 * digest; refuse unsigned, tampered, wrong key, another image's signature, a re-tagged image, and
 * `reject`. Nothing here touches the network: signatures are in-memory (staticSignatures).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { evaluate } from '../../../lib/sign/evaluate.js'
import { parsePolicy, type Policy } from '../../../lib/sign/policy.js'
import { staticSignatures, type Signature } from '../../../lib/sign/signature.js'
import { parseImageName } from '../../../lib/oci/image-name.js'
import { CofferError } from '../../../lib/util/errors.js'
import {
  cosignKey,
  gpgKey,
  manifestBytes,
  sha256,
  sigstoreSig,
  simpleSig,
  type CosignFixture,
  type GpgFixture,
} from './fixtures.js'

const REG = 'registry.example:5000'
const MANIFEST = manifestBytes('app')
const DIGEST = sha256(MANIFEST)
const OTHER_DIGEST = sha256(manifestBytes('other'))

let dir: string
let gpg: GpgFixture
let gpgOther: GpgFixture
let cos: CosignFixture
let cosOther: CosignFixture

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-eval-'))
  ;[gpg, gpgOther] = await Promise.all([gpgKey('trusted@example.com'), gpgKey('other@example.com')])
  cos = cosignKey()
  cosOther = cosignKey()
  await writeFile(join(dir, 'trusted.gpg'), gpg.publicKeyring)
  await writeFile(join(dir, 'trusted.asc'), gpg.armoredPublic)
  await writeFile(join(dir, 'other.gpg'), gpgOther.publicKeyring)
  await writeFile(join(dir, 'cosign.pub'), cos.publicPem)
  await writeFile(join(dir, 'cosign-other.pub'), cosOther.publicPem)
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

/** One way of writing a signature requirement, and how to make a signature it can accept. */
interface Form {
  name: string
  requirement: () => Record<string, unknown>
  sign: (ref: string, digest: string) => Promise<Signature>
  signWrongKey: (ref: string, digest: string) => Promise<Signature>
  tamper: (sig: Signature) => Signature
}

const flip = (b: Uint8Array): Uint8Array => {
  const c = Buffer.from(b)
  c[c.length >> 1]! ^= 0x20
  return c
}
const gpgTamper = (s: Signature): Signature =>
  s.kind === 'simple-signing' ? { ...s, blob: flip(s.blob) } : s
const cosignTamper = (s: Signature): Signature =>
  s.kind === 'sigstore'
    ? { ...s, payload: Buffer.from(Buffer.from(s.payload).toString().replace('app', 'apq')) }
    : s

const FORMS: Form[] = [
  ...(
    [
      ['keyPath', () => ({ keyPath: join(dir, 'trusted.gpg') })],
      ['keyPath (armored)', () => ({ keyPath: join(dir, 'trusted.asc') })],
      ['keyPaths', () => ({ keyPaths: [join(dir, 'other.gpg'), join(dir, 'trusted.gpg')] })],
      ['keyData', () => ({ keyData: b64(gpg.publicKeyring) })],
    ] as const
  ).map(([how, keys]): Form => ({
    name: `signedBy ${how}`,
    requirement: () => ({ type: 'signedBy', keyType: 'GPGKeys', ...keys() }),
    sign: (ref, digest) => simpleSig(gpg, ref, digest),
    signWrongKey: (ref, digest) => simpleSig(cosOtherGpg(), ref, digest),
    tamper: gpgTamper,
  })),
  ...(
    [
      ['keyPath', () => ({ keyPath: join(dir, 'cosign.pub') })],
      ['keyPaths', () => ({ keyPaths: [join(dir, 'cosign-other.pub'), join(dir, 'cosign.pub')] })],
      ['keyData', () => ({ keyData: b64(cos.publicPem) })],
      ['keyDatas', () => ({ keyDatas: [b64(cosOther.publicPem), b64(cos.publicPem)] })],
    ] as const
  ).map(([how, keys]): Form => ({
    name: `sigstoreSigned ${how}`,
    requirement: () => ({ type: 'sigstoreSigned', ...keys() }),
    sign: async (ref, digest) => sigstoreSig(cos, ref, digest),
    signWrongKey: async (ref, digest) => sigstoreSig(cosignKey(), ref, digest),
    tamper: cosignTamper,
  })),
]
/** A GPG key that no policy trusts (keyPaths above trusts `other`, so wrong-key cases need a third). */
let stranger: GpgFixture | undefined
const cosOtherGpg = (): GpgFixture => stranger!
beforeAll(async () => {
  stranger = await gpgKey('stranger@example.com')
})

function policyWith(requirement: Record<string, unknown>): Policy {
  return parsePolicy(
    Buffer.from(
      JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: { [REG]: [requirement] } } }),
    ),
  )
}

async function run(policy: Policy, image: string, sigs: Signature[], manifest = MANIFEST) {
  return evaluate(policy, parseImageName(image), manifest, staticSignatures(sigs))
}

async function expectDenied(p: Promise<unknown>, why?: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err, 'the image was accepted').toBeInstanceOf(CofferError)
  expect((err as CofferError).code).toBe('ERR_SIGN_POLICY_DENIED')
  if (why) expect((err as CofferError).message).toMatch(why)
}

describe.each(FORMS)('$name', (form) => {
  const tagged = `docker://${REG}/app:v1`
  const signedRef = `${REG}/app:v1`

  it('accepts the image by tag', async () => {
    const result = await run(policyWith(form.requirement()), tagged, [await form.sign(signedRef, DIGEST)])
    expect(result.scope).toBe(`transports.docker["${REG}"]`)
    expect(result.requirements[0]!.signatures).toHaveLength(1)
  })

  it('accepts the image by digest (matchRepoDigestOrExact: same repository)', async () => {
    await run(policyWith(form.requirement()), `docker://${REG}/app@${DIGEST}`, [
      await form.sign(signedRef, DIGEST),
    ])
  })

  it('accepts when one of several signatures is good', async () => {
    const sigs = [await form.signWrongKey(signedRef, DIGEST), await form.sign(signedRef, DIGEST)]
    const result = await run(policyWith(form.requirement()), tagged, sigs)
    expect(result.requirements[0]!.signatures).toHaveLength(1)
  })

  it('refuses an unsigned image', async () => {
    await expectDenied(run(policyWith(form.requirement()), tagged, []), /no signature exists/)
  })

  it('refuses a tampered signature', async () => {
    const sig = form.tamper(await form.sign(signedRef, DIGEST))
    await expectDenied(run(policyWith(form.requirement()), tagged, [sig]))
  })

  it('refuses a signature by an untrusted key', async () => {
    await expectDenied(
      run(policyWith(form.requirement()), tagged, [await form.signWrongKey(signedRef, DIGEST)]),
    )
  })

  it("refuses another image's signature (digest mismatch)", async () => {
    await expectDenied(
      run(policyWith(form.requirement()), tagged, [await form.sign(signedRef, OTHER_DIGEST)]),
      /signs manifest/,
    )
  })

  it('refuses the same manifest re-tagged (identity mismatch)', async () => {
    await expectDenied(
      run(policyWith(form.requirement()), `docker://${REG}/app:v2`, [await form.sign(signedRef, DIGEST)]),
      /identity/,
    )
    await expectDenied(
      run(policyWith(form.requirement()), `docker://${REG}/evil:v1`, [await form.sign(signedRef, DIGEST)]),
      /identity/,
    )
  })

  it('refuses when a later requirement is reject, and when the signature is of the other kind', async () => {
    const policy = parsePolicy(
      Buffer.from(JSON.stringify({ default: [form.requirement(), { type: 'reject' }] })),
    )
    await expectDenied(run(policy, tagged, [await form.sign(signedRef, DIGEST)]), /reject/)
    const other = form.name.startsWith('signedBy')
      ? sigstoreSig(cos, signedRef, DIGEST)
      : await simpleSig(gpg, signedRef, DIGEST)
    await expectDenied(run(policyWith(form.requirement()), tagged, [other]), /not a/)
  })

  it('never accepts random bytes as a signature (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 600 }),
        fc.string({ maxLength: 40 }),
        async (bytes, text) => {
          const sig: Signature = form.name.startsWith('signedBy')
            ? { kind: 'simple-signing', blob: bytes }
            : {
                kind: 'sigstore',
                mimeType: 'application/vnd.dev.cosign.simplesigning.v1+json',
                payload: bytes,
                annotations: { 'dev.cosignproject.cosign/signature': text },
              }
          await expectDenied(run(policyWith(form.requirement()), tagged, [sig]))
        },
      ),
      { numRuns: 40 },
    )
  })
})

describe('requirements without signatures', () => {
  it('insecureAcceptAnything accepts and reads no signatures; reject refuses', async () => {
    let reads = 0
    const source = { signatures: async () => (reads++, []) }
    const accept = parsePolicy(Buffer.from('{"default":[{"type":"insecureAcceptAnything"}]}'))
    await evaluate(accept, parseImageName(`docker://${REG}/app:v1`), MANIFEST, source)
    expect(reads).toBe(0)
    const reject = parsePolicy(Buffer.from('{"default":[{"type":"reject"}]}'))
    await expectDenied(evaluate(reject, parseImageName(`docker://${REG}/app:v1`), MANIFEST, source))
  })

  it('an oci: image has no docker identity: matchRepoDigestOrExact refuses, exactReference can accept', async () => {
    const sig = await simpleSig(gpg, `${REG}/app:v1`, DIGEST)
    const req = (signedIdentity?: unknown) =>
      parsePolicy(
        Buffer.from(
          JSON.stringify({
            default: [
              {
                type: 'signedBy',
                keyType: 'GPGKeys',
                keyData: b64(gpg.publicKeyring),
                ...(signedIdentity ? { signedIdentity } : {}),
              },
            ],
          }),
        ),
      )
    await expectDenied(run(req(), `oci:${dir}:v1`, [sig]), /identity/)
    await run(req({ type: 'exactReference', dockerReference: `${REG}/app:v1` }), `oci:${dir}:v1`, [sig])
    await run(req({ type: 'exactRepository', dockerRepository: `${REG}/app` }), `oci:${dir}:v1`, [sig])
  })
})

describe('requirements coffer cannot evaluate are refused, never accepted', () => {
  const cases: [string, Record<string, unknown>][] = [
    [
      'fulcio',
      { type: 'sigstoreSigned', fulcio: { caData: 'AAAA', oidcIssuer: 'https://x', subjectEmail: 'a@b' } },
    ],
    ['rekor', { type: 'sigstoreSigned', keyData: 'AAAA', rekorPublicKeyData: 'AAAA' }],
    ['pki', { type: 'sigstoreSigned', pki: { caRootsData: 'AAAA', subjectEmail: 'a@b' } }],
    ['X509Certificates', { type: 'signedBy', keyType: 'X509Certificates', keyData: 'AAAA' }],
    ['signedBaseLayer', { type: 'signedBaseLayer', baseLayerIdentity: { type: 'matchExact' } }],
  ]
  it.each(cases)('%s → ERR_SIGN_UNSUPPORTED', async (_name, requirement) => {
    const err = await run(policyWith(requirement), `docker://${REG}/app:v1`, [
      sigstoreSig(cos, `${REG}/app`, DIGEST),
    ]).catch((e: unknown) => e)
    expect((err as CofferError).code).toBe('ERR_SIGN_UNSUPPORTED')
  })

  it('a kbs:/// key path needs a caller resolver; with one it is used', async () => {
    const policy = policyWith({
      type: 'sigstoreSigned',
      keyPath: 'kbs:///default/cosign/pub',
      signedIdentity: { type: 'matchRepository' },
    })
    const sigs = [sigstoreSig(cos, `${REG}/app`, DIGEST)]
    const image = parseImageName(`docker://${REG}/app:v1`)
    const err = await evaluate(policy, image, MANIFEST, staticSignatures(sigs)).catch((e: unknown) => e)
    expect((err as CofferError).code).toBe('ERR_SIGN_UNSUPPORTED')
    const asked: string[] = []
    await evaluate(policy, image, MANIFEST, staticSignatures(sigs), {
      resolveKey: async (p) => (asked.push(p), cos.publicPem),
    })
    expect(asked).toEqual(['kbs:///default/cosign/pub'])
  })

  it('a key file that is not a key is ERR_SIGN_KEY_INVALID, not a refusal or an accept', async () => {
    await writeFile(join(dir, 'garbage'), 'not a key')
    for (const requirement of [
      { type: 'signedBy', keyType: 'GPGKeys', keyPath: join(dir, 'garbage') },
      { type: 'sigstoreSigned', keyPath: join(dir, 'garbage') },
      { type: 'sigstoreSigned', keyPath: join(dir, 'missing') },
    ]) {
      const err = await run(policyWith(requirement), `docker://${REG}/app:v1`, []).catch((e: unknown) => e)
      expect((err as CofferError).code).toBe('ERR_SIGN_KEY_INVALID')
    }
  })
})
