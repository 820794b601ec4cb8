/**
 * The pgp key wrapper against the reference: skopeo 1.9.3 (ocicrypt 1.0.3, golang.org/x/crypto
 * openpgp), keys made by gpg in a private GNUPGHOME. Forward: skopeo encrypts for `pgp:<email>`
 * (it runs `gpg --export` to find the recipients), coffer unwraps its `enc.keys.pgp` annotations
 * with the secret keys `gpg --export-secret-keys` writes. Reverse: coffer re-wraps the same
 * private options into a skopeo-encrypted image's manifest and skopeo decrypts that image with
 * the exported secret key file (spec §1.6, §1.7).
 *
 * golang.org/x/crypto/openpgp reads RSA and ElGamal recipients only, so the keys here are RSA;
 * ECC keys are covered by the conformance suite in test/unit/plugins/keywrap/pgp.test.ts.
 */
import { execFile } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { enums, readMessage, readPrivateKeys } from 'openpgp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DecryptConfig, EncryptConfig } from '../../lib/crypt/keywrap.js'
import { CofferError } from '../../lib/util/errors.js'
import {
  createPgpKeyWrapper,
  DC_GPG_PRIVATEKEYS,
  DC_GPG_PRIVATEKEYS_PASSWORDS,
  EC_GPG_PUBKEYRINGFILE,
  EC_GPG_PUBKEYS,
  EC_GPG_RECIPIENTS,
  PGP_ANNOTATION,
} from '../../plugins/keywrap/pgp/pgp-keywrap.js'
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
const PASSWORD = 'interop pw'
const ALICE = 'alice@example.com'
const BOB = 'bob@example.com'
/** Bob's key is passphrase-protected; Alice's is not (skopeo 1.9.3 cannot pass a password). */
const LOCKED = 'locked@example.com'

/** This scheme's wrapped-key elements, per layer. */
const pgpElements = (m: Manifest): Buffer[][] => annotationElements(m, PGP_ANNOTATION)

let work: string
let gnupgHome: string
let sample: SampleImage
const file = (name: string): string => join(work, name)
const w = createPgpKeyWrapper()

/** gpg in the test's own home, never the user's keyring; no agent prompts (loopback pinentry). */
async function gpg(args: string[]): Promise<Buffer> {
  const { stdout } = await execFileP('gpg', ['--batch', '--pinentry-mode', 'loopback', ...args], {
    env: { ...process.env, GNUPGHOME: gnupgHome },
    encoding: 'buffer',
    maxBuffer: 16 * 1024 * 1024,
  })
  return stdout
}

/** An RSA 3072 key as a user would make it: certify/sign primary plus an encryption subkey. */
async function makeGpgKey(name: string, email: string, passphrase = ''): Promise<void> {
  const pw = ['--passphrase', passphrase]
  await gpg([...pw, '--quick-gen-key', `${name} <${email}>`, 'rsa3072', 'cert,sign', 'never'])
  const listing = (await gpg(['--with-colons', '--list-keys', email])).toString()
  const fpr = /^fpr:+([0-9A-F]+):/m.exec(listing)?.[1]
  if (!fpr) throw new Error(`gpg made no key for ${email}`)
  await gpg([...pw, '--quick-add-key', fpr, 'rsa3072', 'encr', 'never'])
}

async function secretKeys(...entries: (string | [string, string])[]): Promise<DecryptConfig> {
  const pairs = entries.map((e) => (typeof e === 'string' ? [e, ''] : e))
  return {
    [DC_GPG_PRIVATEKEYS]: await Promise.all(pairs.map(([n]) => readFile(file(n!)))),
    [DC_GPG_PRIVATEKEYS_PASSWORDS]: pairs.map(([, pw]) => Buffer.from(pw!)),
  }
}

/** Top-level packet tags and their version octets (new- or old-format headers, definite lengths). */
function topLevelPackets(bytes: Uint8Array): { tag: number; version: number }[] {
  const out: { tag: number; version: number }[] = []
  const b = Buffer.from(bytes)
  let at = 0
  while (at < b.length) {
    const first = b[at]!
    let tag: number
    let len: number
    let body: number
    if ((first & 0xc0) === 0xc0) {
      tag = first & 0x3f
      const l0 = b[at + 1]!
      if (l0 < 192) [len, body] = [l0, at + 2]
      else if (l0 < 224) [len, body] = [((l0 - 192) << 8) + b[at + 2]! + 192, at + 3]
      else if (l0 === 255) [len, body] = [b.readUInt32BE(at + 2), at + 6]
      else {
        // A partial body length: only the last packet (the encrypted data) may use one.
        out.push({ tag, version: b[at + 2]! })
        break
      }
    } else {
      tag = (first >> 2) & 0x0f
      const lt = first & 0x03
      if (lt === 0) [len, body] = [b[at + 1]!, at + 2]
      else if (lt === 1) [len, body] = [b.readUInt16BE(at + 1), at + 3]
      else if (lt === 2) [len, body] = [b.readUInt32BE(at + 1), at + 5]
      else [len, body] = [b.length - at - 1, at + 1]
    }
    out.push({ tag, version: b[body]! })
    at = body + len
  }
  return out
}

/** Decrypts with openpgp directly and lists the packets inside the encrypted data. */
async function innerPacketTags(wrapped: Uint8Array, secretKeyFile: string): Promise<number[]> {
  const keys = await readPrivateKeys({ binaryKeys: await readFile(file(secretKeyFile)) })
  const plain = await (await readMessage({ binaryMessage: new Uint8Array(wrapped) })).decrypt(keys)
  return plain.packets.map((p) => (p.constructor as unknown as { tag: number }).tag)
}

/** skopeo-encrypted images, by recipient set; made once in beforeAll. */
const ENCRYPTED = {
  alice: [ALICE],
  locked: [LOCKED],
  both: [ALICE, BOB],
} as const
type Case = keyof typeof ENCRYPTED

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-pgp-skopeo-'))
  gnupgHome = file('gnupg')
  await mkdir(gnupgHome)
  await chmod(gnupgHome, 0o700)
  // === keys, as a user would make them with gpg
  await makeGpgKey('Alice', ALICE)
  await makeGpgKey('Bob', BOB)
  await makeGpgKey('Locked', LOCKED, PASSWORD)
  await makeGpgKey('Other', 'other@example.com')
  // === exported as users hand them around
  await writeFile(file('alice.sec.gpg'), await gpg(['--export-secret-keys', ALICE]))
  await writeFile(file('alice.sec.asc'), await gpg(['--armor', '--export-secret-keys', ALICE]))
  await writeFile(file('bob.sec.gpg'), await gpg(['--export-secret-keys', BOB]))
  await writeFile(
    file('locked.sec.gpg'),
    await gpg(['--passphrase', PASSWORD, '--export-secret-keys', LOCKED]),
  )
  await writeFile(file('other.sec.gpg'), await gpg(['--export-secret-keys', 'other@example.com']))
  await writeFile(file('alice.asc'), await gpg(['--armor', '--export', ALICE]))
  await writeFile(file('bob.pub.gpg'), await gpg(['--export', BOB]))
  await writeFile(file('pubring.gpg'), await gpg(['--export']))
  // A keyring of secret keys, as `gpg --export-secret-keys` writes with no name.
  await writeFile(file('all.sec.gpg'), await gpg(['--passphrase', PASSWORD, '--export-secret-keys']))

  // === a plain image, encrypted by skopeo for each recipient set (skopeo runs gpg to find them)
  sample = await makeSampleLayout(file('src'), 'v1', { layers: 2 })
  await Promise.all(
    Object.entries(ENCRYPTED).map(([name, emails]) =>
      skopeo(
        [
          'copy',
          ...emails.flatMap((e) => ['--encryption-key', `pgp:${e}`]),
          `oci:${file('src')}:v1`,
          `oci:${file(`enc-${name}`)}:v1`,
        ],
        { env: { GNUPGHOME: gnupgHome } },
      ),
    ),
  )
}, 120_000)
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true })
})

describe('skopeo encrypts, coffer unwraps', () => {
  it('one recipient: a binary message, PKESK v3 then SEIPD v1 holding uncompressed literal data', async () => {
    const m = await manifestOf(file('enc-alice'))
    for (const [i, elements] of annotationElements(m, PGP_ANNOTATION).entries()) {
      expect(m.layers[i]!.mediaType).toMatch(/\+encrypted$/)
      expect(elements).toHaveLength(1)
      const [msg] = elements
      expect(topLevelPackets(msg!)).toEqual([
        { tag: enums.packet.publicKeyEncryptedSessionKey, version: 3 },
        { tag: enums.packet.symEncryptedIntegrityProtectedData, version: 1 },
      ])
      expect(await innerPacketTags(msg!, 'alice.sec.gpg')).toEqual([enums.packet.literalData])
      expectPrivateOptions(
        await w.unwrapKey(await secretKeys('alice.sec.gpg'), msg!),
        sample.layers[i]!.digest,
      )
      expectPrivateOptions(
        await w.unwrapKey(await secretKeys('alice.sec.asc'), msg!),
        sample.layers[i]!.digest,
      )
      await expectDecryptFailed(w.unwrapKey(await secretKeys('other.sec.gpg', 'bob.sec.gpg'), msg!))
    }
  })

  it('two recipients: one message with a PKESK each; either secret key unwraps', async () => {
    const m = await manifestOf(file('enc-both'))
    for (const [i, elements] of annotationElements(m, PGP_ANNOTATION).entries()) {
      expect(elements).toHaveLength(1)
      expect(topLevelPackets(elements[0]!).map((p) => p.tag)).toEqual([
        enums.packet.publicKeyEncryptedSessionKey,
        enums.packet.publicKeyEncryptedSessionKey,
        enums.packet.symEncryptedIntegrityProtectedData,
      ])
      for (const key of ['alice.sec.gpg', 'bob.sec.gpg']) {
        expectPrivateOptions(await w.unwrapKey(await secretKeys(key), elements[0]!), sample.layers[i]!.digest)
      }
      // An unrelated key offered first does not stop the right one.
      expectPrivateOptions(
        await w.unwrapKey(await secretKeys('other.sec.gpg', 'bob.sec.gpg'), elements[0]!),
        sample.layers[i]!.digest,
      )
      await expectDecryptFailed(w.unwrapKey(await secretKeys('other.sec.gpg'), elements[0]!))
    }
  })

  it('a passphrase-protected secret key: unwraps with its password; a wrong one is ERR_CRYPT_KEY_INVALID by position', async () => {
    const msg = pgpElements(await manifestOf(file('enc-locked')))[0]![0]
    const digest = sample.layers[0]!.digest
    expectPrivateOptions(await w.unwrapKey(await secretKeys(['locked.sec.gpg', PASSWORD]), msg!), digest)
    // The whole secret keyring (`gpg --export-secret-keys`): only Locked's key is locked, and the
    // password at this position opens it; the unlocked keys need none.
    expectPrivateOptions(await w.unwrapKey(await secretKeys(['all.sec.gpg', PASSWORD]), msg!), digest)
    const err = await w
      .unwrapKey(await secretKeys('alice.sec.gpg', ['locked.sec.gpg', 'not it']), msg!)
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(CofferError)
    expect(err).toMatchObject({
      code: 'ERR_CRYPT_KEY_INVALID',
      message: expect.stringContaining('pgp decryption key 2'),
    })
    expect((err as Error).message).not.toContain('not it')
  })
})

describe('coffer wraps, skopeo unwraps', () => {
  /**
   * Replaces each layer's pgp annotation in a copy of a skopeo-encrypted image with coffer's
   * wrapping of the same private options for `recipients`, leaving ciphertext and pubopts alone.
   * The images are re-wrapped for keys skopeo did not encrypt for, so only coffer's message opens them.
   */
  async function rewrap(
    c: Case,
    label: string,
    recipients: EncryptConfig,
    keysOffered: DecryptConfig,
  ): Promise<string> {
    const dir = file(`ours-from-${c}-${label}`)
    await editedLayoutCopy(file(`enc-${c}`), dir, async (m) => {
      for (const [i, [theirs]] of annotationElements(m, PGP_ANNOTATION).entries()) {
        const options = await w.unwrapKey(keysOffered, theirs!)
        const wrapped = await w.wrapKeys(recipients, options)
        m.layers[i]!.annotations![PGP_ANNOTATION] = Buffer.from(wrapped).toString('base64')
      }
    })
    return dir
  }

  /** skopeo decrypts the rewrapped image; the layers come back bit for bit (spec §1.5). */
  async function skopeoDecrypts(dir: string, key: string): Promise<void> {
    const out = `${dir}-dec-${key}`
    await skopeo(['copy', '--decryption-key', file(key), `oci:${dir}:v1`, `oci:${out}:v1`])
    await expectDecryptedTo(out, sample.layers, PGP_ANNOTATION)
  }

  it('one recipient from an armored public key file (an image skopeo encrypted for another key)', async () => {
    const alice: EncryptConfig = { [EC_GPG_PUBKEYS]: [await readFile(file('alice.asc'))] }
    const dir = await rewrap('locked', 'alice', alice, await secretKeys(['locked.sec.gpg', PASSWORD]))
    const ours = pgpElements(await manifestOf(dir))[0]![0]
    expect(topLevelPackets(ours!)).toEqual([
      { tag: enums.packet.publicKeyEncryptedSessionKey, version: 3 },
      { tag: enums.packet.symEncryptedIntegrityProtectedData, version: 1 },
    ])
    await skopeoDecrypts(dir, 'alice.sec.gpg')
    await expect(skopeoDecrypts(dir, 'bob.sec.gpg')).rejects.toThrow(/skopeo copy .* failed/)
  })

  it('two recipients picked by e-mail and by name from `gpg --export` output: skopeo decrypts with either key', async () => {
    const byName: EncryptConfig = {
      [EC_GPG_RECIPIENTS]: [Buffer.from(ALICE), Buffer.from('Bob')],
      [EC_GPG_PUBKEYRINGFILE]: [await readFile(file('pubring.gpg'))],
    }
    const dir = await rewrap('locked', 'both', byName, await secretKeys(['locked.sec.gpg', PASSWORD]))
    const ours = pgpElements(await manifestOf(dir))[0]![0]
    expect(topLevelPackets(ours!).map((p) => p.tag)).toEqual([
      enums.packet.publicKeyEncryptedSessionKey,
      enums.packet.publicKeyEncryptedSessionKey,
      enums.packet.symEncryptedIntegrityProtectedData,
    ])
    await skopeoDecrypts(dir, 'alice.sec.gpg')
    await skopeoDecrypts(dir, 'bob.sec.gpg')
    await expect(skopeoDecrypts(dir, 'other.sec.gpg')).rejects.toThrow(/skopeo copy .* failed/)
  })

  it('a binary public key file, re-wrapping an image skopeo encrypted for two', async () => {
    const bob: EncryptConfig = { [EC_GPG_PUBKEYS]: [await readFile(file('bob.pub.gpg'))] }
    const dir = await rewrap('both', 'bob', bob, await secretKeys('alice.sec.gpg'))
    await skopeoDecrypts(dir, 'bob.sec.gpg')
    await expect(skopeoDecrypts(dir, 'alice.sec.gpg')).rejects.toThrow(/skopeo copy .* failed/)
  })
})
