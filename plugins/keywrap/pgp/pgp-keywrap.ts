/**
 * ocicrypt's `pgp` key wrapper (`keywrap/pgp/keywrapper_gpg.go`, spec §1.6) on top of `openpgp`
 * (OpenPGP.js): the layer's private options JSON becomes one binary OpenPGP message encrypted to
 * every recipient at once.
 *
 * What we write matches what go-crypto's `openpgp.Encrypt` writes with ocicrypt's
 * `GPGDefaultEncryptConfig` (checked against skopeo 1.9.3 in test/interop/pgp-skopeo.test.ts):
 * one PKESK v3 per recipient, then a SEIPD v1 packet (CFB + MDC), AES-256, holding an uncompressed
 * literal data packet; no signature, no armor. We never write SEIPD v2/AEAD, even for keys that
 * advertise it, because skopeo 1.9.3 (golang.org/x/crypto/openpgp) cannot read it. Only RSA (and
 * ElGamal) recipients can be read by that skopeo; ocicrypt HEAD (ProtonMail go-crypto) reads ECDH too.
 *
 * Parameter names (ocicrypt `EncryptConfig.Parameters` / `DecryptConfig.Parameters`, spec §1.7):
 * - `ec['gpg-pubkeys']` (coffer's own): one entry per public key FILE, armored or binary, each of
 *   which may hold several keys (all become recipients). This is how coffer takes pgp recipients
 *   (`--encryption-key pgp:./alice.asc`): it reads key files rather than running gpg to export
 *   the user's keyring and picking keys by e-mail, as skopeo does for `pgp:alice@example.com`.
 * - `ec['gpg-recipients']` + `ec['gpg-pubkeyringfile']` (as ocicrypt): names or e-mail addresses,
 *   matched exactly against the `Name <email>` user IDs of the keys in a keyring exported by
 *   `gpg --export` (several keyring entries are read as one keyring). Every recipient must match.
 * - `dc['gpg-privatekeys']`: secret keys or keyrings (`gpg --export-secret-keys`), armored or
 *   binary; `dc['gpg-privatekeys-passwords']`: same positions, UTF-8, empty or missing = none.
 */
import {
  createMessage,
  decryptKey,
  enums,
  readKeys,
  readMessage,
  readPrivateKeys,
  encrypt,
  config as openpgpDefaults,
  type Config,
  type Key,
  type Message,
  type PartialConfig,
  type PrivateKey,
  type PublicKey,
} from 'openpgp'
import { createHash, randomBytes } from 'node:crypto'
import type { DecryptConfig, EncryptConfig, KeyWrapper } from '../../../lib/crypt/keywrap.js'
import { CofferError } from '../../../lib/util/errors.js'
import { throwIfAborted, type Io } from '../../../lib/util/io.js'
import { MAX_CRYPT_OPTIONS_BYTES, MAX_KEYS_ANNOTATION_BYTES } from '../../../lib/util/limits.js'
import { decryptFailed } from '../../../lib/crypt/decrypt-failed.js'
import {
  DC_GPG_PRIVATEKEYS,
  DC_GPG_PRIVATEKEYS_PASSWORDS,
  EC_GPG_PUBKEYRINGFILE,
  EC_GPG_PUBKEYS,
  EC_GPG_RECIPIENTS,
  pgpSelection,
} from './selection.js'

export {
  DC_GPG_PRIVATEKEYS,
  DC_GPG_PRIVATEKEYS_PASSWORDS,
  EC_GPG_PUBKEYRINGFILE,
  EC_GPG_PUBKEYS,
  EC_GPG_RECIPIENTS,
  PGP_ANNOTATION,
} from './selection.js'

/**
 * One wrapped message as unwrapKey takes it (an annotation element, base64-decoded). Ours are a few
 * hundred bytes per recipient; the whole annotation is capped at the same size anyway.
 * TODO(limits): move to lib/util/limits.ts as MAX_PGP_MESSAGE_BYTES.
 */
const MAX_PGP_MESSAGE_BYTES = MAX_KEYS_ANNOTATION_BYTES

/**
 * What openpgp may read and write here. Decompression cannot be switched off in OpenPGP.js (it
 * inflates while parsing the decrypted packets), so it is capped at the size of any private
 * options, and a compressed message is then refused outright: ocicrypt never compresses.
 */
const OPENPGP_CONFIG: PartialConfig = {
  preferredSymmetricAlgorithm: enums.symmetric.aes256,
  preferredHashAlgorithm: enums.hash.sha256,
  preferredCompressionAlgorithm: enums.compression.uncompressed,
  aeadProtect: false,
  allowUnauthenticatedMessages: false,
  allowUnauthenticatedStream: false,
  maxDecompressedMessageSize: MAX_CRYPT_OPTIONS_BYTES,
}
/** The same over openpgp's defaults, for the calls that take a full config. */
const FULL_CONFIG: Config = { ...openpgpDefaults, ...OPENPGP_CONFIG }

class PgpKeyWrapper implements KeyWrapper {
  readonly name = pgpSelection.name
  readonly annotationId = pgpSelection.annotationId
  readonly hasRecipients = pgpSelection.hasRecipients
  readonly noPossibleKeys = pgpSelection.noPossibleKeys

  async wrapKeys(ec: EncryptConfig, privateOptions: Uint8Array, o: Io = {}): Promise<Uint8Array> {
    throwIfAborted(o.signal)
    const recipients = [...(await keysFromFiles(ec)), ...(await keysByName(ec))]
    if (recipients.length === 0)
      throw new CofferError('ERR_CRYPT_NO_KEY', 'pgp: no recipient public key to wrap for')
    throwIfAborted(o.signal)
    const algorithm = await cipherFor(recipients)
    try {
      const message = await createMessage({ binary: new Uint8Array(privateOptions), format: 'binary' })
      // Our own session key without an AEAD algorithm: OpenPGP.js then writes PKESK v3 + SEIPD v1,
      // which every ocicrypt can read, whatever features the recipients' keys advertise.
      const sessionKey = { data: new Uint8Array(randomBytes(algorithm === 'aes256' ? 32 : 16)), algorithm }
      const out = await encrypt({
        message,
        encryptionKeys: recipients,
        sessionKey,
        format: 'binary',
        config: OPENPGP_CONFIG,
      })
      return Buffer.from(out)
    } catch (cause) {
      // Every key was checked above, so this is a bug or a library gap, not bad input.
      throw new CofferError('ERR_INTERNAL', 'pgp: wrapping the layer key failed', { cause })
    }
  }

  async unwrapKey(dc: DecryptConfig, wrapped: Uint8Array, o: Io = {}): Promise<Uint8Array> {
    throwIfAborted(o.signal)
    if (wrapped.byteLength > MAX_PGP_MESSAGE_BYTES) {
      throw new CofferError(
        'ERR_TOO_LARGE',
        `the pgp annotation is larger than the ${MAX_PGP_MESSAGE_BYTES}-byte limit`,
      )
    }
    const bytes = new Uint8Array(wrapped)
    // Parsed up front so junk fails before any key is unlocked (S2K is slow on purpose).
    await parseMessage(bytes)
    const keys = await decryptionKeysFrom(dc)
    // One key set at a time, as ocicrypt tries each keyring in turn: a keyring never helps another.
    for (const set of keys) {
      throwIfAborted(o.signal)
      try {
        // Message.decrypt consumes the message's packets, so every attempt parses its own copy.
        const message = await parseMessage(bytes)
        const plain = await message.decrypt(set, undefined, undefined, undefined, FULL_CONFIG)
        // === refuse compression, which ocicrypt never writes (bomb risk); the payload is the literal data
        const tags = plain.packets.map((p) => (p.constructor as { tag?: number }).tag)
        if (tags.includes(enums.packet.compressedData)) continue
        const data = plain.getLiteralData()
        if (!(data instanceof Uint8Array)) continue
        if (data.byteLength > MAX_CRYPT_OPTIONS_BYTES) continue
        return Buffer.from(data)
      } catch {
        // Wrong key, tampered message, unsupported packet: all look the same from outside (STYLE §6).
      }
    }
    throw decryptFailed()
  }
}

/**
 * A pgp KeyWrapper (ocicrypt-compatible). No per-instance state (unlocked secret keys are cached
 * weakly per key file, see `unlockCache`); one instance may serve every layer.
 */
export function createPgpKeyWrapper(): KeyWrapper {
  return new PgpKeyWrapper()
}

// === wrapping

/** `gpg-pubkeys`: every key in every file is a recipient; each must be able to encrypt. */
async function keysFromFiles(ec: EncryptConfig): Promise<PublicKey[]> {
  const out: PublicKey[] = []
  for (const [i, bytes] of (ec[EC_GPG_PUBKEYS] ?? []).entries()) {
    const source = `pgp recipient ${i + 1}`
    const keys = await parseKeys(bytes, source)
    for (const key of keys) out.push(await encryptionCapable(key, source))
  }
  return out
}

/** `gpg-recipients` picked from `gpg-pubkeyringfile` by name or e-mail, as ocicrypt's createEntityList. */
async function keysByName(ec: EncryptConfig): Promise<PublicKey[]> {
  const wanted = (ec[EC_GPG_RECIPIENTS] ?? []).map((r) => Buffer.from(r).toString('utf8'))
  if (wanted.length === 0) return []
  const rings = ec[EC_GPG_PUBKEYRINGFILE] ?? []
  if (rings.length === 0) {
    throw new CofferError(
      'ERR_CRYPT_NO_KEY',
      'pgp: recipients given by name need a public keyring (gpg-pubkeyringfile) to look them up in',
    )
  }
  const ring: Key[] = []
  for (const [i, bytes] of rings.entries()) ring.push(...(await parseKeys(bytes, `pgp keyring ${i + 1}`)))
  const out: PublicKey[] = []
  for (const who of wanted) {
    const found = ring.filter((k) =>
      k.users.some((u) => u.userID !== null && (u.userID.name === who || u.userID.email === who)),
    )
    if (found.length === 0) {
      throw new CofferError(
        'ERR_CRYPT_RECIPIENT_INVALID',
        `pgp: no key in the keyring for recipient "${who}"`,
      )
    }
    for (const key of found) {
      if (out.some((k) => k.getFingerprint() === key.getFingerprint())) continue
      out.push(await encryptionCapable(key, `pgp recipient "${who}"`))
    }
  }
  return out
}

/** Armored or binary OpenPGP keys (one or many); anything else is ERR_CRYPT_KEY_INVALID. */
async function parseKeys(bytes: Uint8Array, source: string): Promise<Key[]> {
  try {
    const keys = isArmored(bytes)
      ? await readKeys({ armoredKeys: Buffer.from(bytes).toString('utf8') })
      : await readKeys({ binaryKeys: new Uint8Array(bytes) })
    if (keys.length > 0) return keys
  } catch {
    // falls through: the parser's message says nothing a user can act on
  }
  throw new CofferError('ERR_CRYPT_KEY_INVALID', `${source}: not an OpenPGP public key`)
}

async function encryptionCapable(key: Key, source: string): Promise<PublicKey> {
  const pub = key.toPublic()
  try {
    await pub.getEncryptionKey(undefined, new Date(), undefined, FULL_CONFIG)
  } catch (cause) {
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `${source}: key ${pub.getKeyID().toHex()} has no usable encryption (sub)key (expired, revoked, too weak or sign-only)`,
      { cause },
    )
  }
  return pub
}

/**
 * AES-256 (ocicrypt's DefaultCipher) unless a recipient's preferences leave it out; then AES-128,
 * which every OpenPGP implementation must read (go-crypto picks the same way).
 */
async function cipherFor(keys: PublicKey[]): Promise<'aes256' | 'aes128'> {
  for (const key of keys) {
    try {
      const { selfCertification } = await key.getPrimaryUser()
      const prefs = selfCertification.preferredSymmetricAlgorithms
      if (prefs && prefs.length > 0 && !prefs.includes(enums.symmetric.aes256)) return 'aes128'
    } catch {
      // No valid user ID: no preferences to honour.
    }
  }
  return 'aes256'
}

// === unwrapping

/**
 * The offered secret keys, one array per `gpg-privatekeys` entry, unlocked with the password at
 * the same position. A file that is no OpenPGP secret key, or a locked key with a wrong or missing
 * password, is ERR_CRYPT_KEY_INVALID naming the position (never the password).
 */
async function decryptionKeysFrom(dc: DecryptConfig): Promise<PrivateKey[][]> {
  const out: PrivateKey[][] = []
  const passwords = dc[DC_GPG_PRIVATEKEYS_PASSWORDS] ?? []
  for (const [i, bytes] of (dc[DC_GPG_PRIVATEKEYS] ?? []).entries()) {
    const result = await unlockCached(bytes, passwords[i])
    if ('problem' in result)
      throw new CofferError('ERR_CRYPT_KEY_INVALID', `pgp decryption key ${i + 1}: ${result.problem}`)
    out.push(result.keys)
  }
  return out
}

type Unlocked = { keys: PrivateKey[] } | { problem: string }

/**
 * Unlocking is slow on purpose (gpg's S2K counts cost OpenPGP.js about a second per key), and
 * unwrapKey runs once per layer with the same DecryptConfig. So outcomes are remembered per key
 * file object (weakly: they go when the caller drops the config) and per password digest.
 */
const unlockCache = new WeakMap<Uint8Array, Map<string, Promise<Unlocked>>>()

function unlockCached(bytes: Uint8Array, password: Uint8Array | undefined): Promise<Unlocked> {
  const pw = password ? Buffer.from(password).toString('utf8') : ''
  const id = createHash('sha256').update(pw).digest('hex')
  let byPassword = unlockCache.get(bytes)
  if (!byPassword) unlockCache.set(bytes, (byPassword = new Map()))
  let result = byPassword.get(id)
  if (!result) byPassword.set(id, (result = unlock(bytes, pw)))
  return result
}

async function unlock(bytes: Uint8Array, password: string): Promise<Unlocked> {
  let keys: PrivateKey[]
  try {
    keys = isArmored(bytes)
      ? await readPrivateKeys({ armoredKeys: Buffer.from(bytes).toString('utf8') })
      : await readPrivateKeys({ binaryKeys: new Uint8Array(bytes) })
  } catch {
    return { problem: 'not an OpenPGP secret key' }
  }
  const unlocked: PrivateKey[] = []
  for (const key of keys) {
    if (key.isDecrypted()) {
      unlocked.push(key)
      continue
    }
    if (password === '') return { problem: 'the secret key is locked and no password was given' }
    try {
      unlocked.push(await decryptKey({ privateKey: key, passphrase: password }))
    } catch {
      // OpenPGP.js says "Incorrect key passphrase"; an S2K it cannot do fails here too.
      return { problem: 'wrong password for the secret key, or it cannot be unlocked' }
    }
  }
  return { keys: unlocked }
}

// === helpers

async function parseMessage(bytes: Uint8Array): Promise<Message<Uint8Array>> {
  try {
    return await readMessage({ binaryMessage: bytes, config: OPENPGP_CONFIG })
  } catch {
    throw decryptFailed()
  }
}

/** ASCII armor starts with `-----BEGIN PGP`; binary packets never do (their first octet has bit 7 set). */
function isArmored(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.subarray(0, 64)).toString('latin1').trimStart()
  return head.startsWith('-----BEGIN PGP')
}
