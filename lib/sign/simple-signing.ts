/**
 * containers "simple signing" blobs (c/image `signature/mechanism_openpgp.go`, `docs/containers-signature.5.md`):
 * a binary OpenPGP **signed message** (RFC 4880 §11.3: one-pass signature, literal data holding the
 * payload JSON, signature), not detached, not cleartext. gpg also compresses it; OpenPGP.js reads
 * both and writes it uncompressed, which gpgme / skopeo read.
 *
 * Verification reports the signer as the **primary key's** fingerprint (uppercase hex), as c/image
 * identifies trusted keys; a signature by a subkey is attributed to its primary key.
 */
import {
  createMessage,
  decryptKey,
  enums,
  config as openpgpDefaults,
  readKeys,
  readMessage,
  readPrivateKeys,
  sign,
  verify,
  type PartialConfig,
  type PrivateKey,
  type PublicKey,
} from 'openpgp'
import { CofferError } from '../util/errors.js'
import { MAX_SIGNATURE_BYTES } from './limits.js'

const OPENPGP_CONFIG: PartialConfig = {
  preferredHashAlgorithm: enums.hash.sha256,
  preferredCompressionAlgorithm: enums.compression.uncompressed,
  // A signed message may be compressed (gpg does); never let it inflate past a signature's size.
  maxDecompressedMessageSize: MAX_SIGNATURE_BYTES,
}

const OPENPGP_FULL_CONFIG = { ...openpgpDefaults, ...OPENPGP_CONFIG }

/** Reads every key in one or more keyrings, armored or binary. Throws ERR_SIGN_KEY_INVALID. */
export async function readPublicKeyrings(
  keyrings: readonly Uint8Array[],
  what: string,
): Promise<PublicKey[]> {
  const keys: PublicKey[] = []
  for (const data of keyrings) {
    try {
      const text = armoredText(data, 'PUBLIC KEY BLOCK') ?? armoredText(data, 'PRIVATE KEY BLOCK')
      const read = text ? await readKeys({ armoredKeys: text }) : await readKeys({ binaryKeys: data })
      keys.push(...read.map((k) => k.toPublic()))
    } catch (cause) {
      throw new CofferError('ERR_SIGN_KEY_INVALID', `${what} is not an OpenPGP keyring`, { cause })
    }
  }
  if (keys.length === 0) throw new CofferError('ERR_SIGN_KEY_INVALID', `${what} holds no OpenPGP keys`)
  return keys
}

/**
 * Reads a secret key for signing, decrypting it with `passphrase` if it is protected. A file with
 * several secret keys is ambiguous and refused.
 */
export async function readSigningKey(
  data: Uint8Array,
  passphrase: string | undefined,
  what: string,
): Promise<PrivateKey> {
  let keys: PrivateKey[]
  try {
    const text = armoredText(data, 'PRIVATE KEY BLOCK')
    keys = text ? await readPrivateKeys({ armoredKeys: text }) : await readPrivateKeys({ binaryKeys: data })
  } catch (cause) {
    throw new CofferError('ERR_SIGN_KEY_INVALID', `${what} is not an OpenPGP secret key`, { cause })
  }
  if (keys.length !== 1)
    throw new CofferError(
      'ERR_SIGN_KEY_INVALID',
      `${what} holds ${keys.length} secret keys; give exactly one`,
    )
  const key = keys[0]!
  if (key.isDecrypted()) return key
  if (passphrase === undefined)
    throw new CofferError(
      'ERR_SIGN_KEY_PASSWORD',
      `${what} is passphrase-protected; pass --sign-passphrase-file`,
    )
  try {
    return await decryptKey({ privateKey: key, passphrase })
  } catch {
    // A fixed message: nothing about the key or the passphrase leaks.
    throw new CofferError('ERR_SIGN_KEY_PASSWORD', `cannot unlock ${what}: wrong passphrase`)
  }
}

/** The uppercase hex fingerprint of a key's primary key (gpg's and c/image's key identity). */
export function fingerprintOf(key: PublicKey | PrivateKey): string {
  return key.getFingerprint().toUpperCase()
}

/** Signs `payload` as a binary OpenPGP signed message. */
export async function createSimpleSignature(payload: Uint8Array, key: PrivateKey): Promise<Uint8Array> {
  const message = await createMessage({ binary: payload })
  return sign({ message, signingKeys: key, format: 'binary', config: OPENPGP_CONFIG })
}

/**
 * Verifies a signed message against `keys` and returns the signed bytes and the signer. Exactly one
 * signature is accepted (gpgme refuses several signers). Throws ERR_SIGN_SIGNATURE_INVALID for
 * anything that is not a valid signature by one of `keys`, including expired or revoked keys.
 */
export async function verifySimpleSignature(
  blob: Uint8Array,
  keys: readonly PublicKey[],
): Promise<{ payload: Uint8Array; signer: string }> {
  if (blob.length > MAX_SIGNATURE_BYTES)
    throw new CofferError(
      'ERR_SIGN_SIGNATURE_INVALID',
      `the signature is larger than ${MAX_SIGNATURE_BYTES} bytes`,
    )
  let result
  try {
    const text = armoredText(blob, 'MESSAGE')
    const message = text
      ? await readMessage({ armoredMessage: text, config: OPENPGP_CONFIG })
      : await readMessage({ binaryMessage: blob, config: OPENPGP_CONFIG })
    result = await verify({
      message,
      verificationKeys: [...keys],
      format: 'binary',
      expectSigned: true,
      config: OPENPGP_CONFIG,
    })
  } catch (cause) {
    throw new CofferError(
      'ERR_SIGN_SIGNATURE_INVALID',
      `not a valid OpenPGP signature by a trusted key: ${reason(cause)}`,
      { cause },
    )
  }
  if (result.signatures.length !== 1)
    throw new CofferError(
      'ERR_SIGN_SIGNATURE_INVALID',
      `the message has ${result.signatures.length} signatures; exactly one is accepted`,
    )
  const only = result.signatures[0]!
  try {
    await only.verified
  } catch (cause) {
    throw new CofferError(
      'ERR_SIGN_SIGNATURE_INVALID',
      `the OpenPGP signature does not verify: ${reason(cause)}`,
      { cause },
    )
  }
  // Defense in depth: expectSigned already checked this, but the signer must be one of *our* keys.
  const signer = keys.find((k) => k.getKeys(only.keyID).length > 0)
  if (!signer) throw new CofferError('ERR_SIGN_SIGNATURE_INVALID', 'the signature is by an unknown key')
  // OpenPGP.js judges the key as of the signature's creation time; gpgme (and so skopeo) refuses a
  // key that is expired or revoked *now*. Follow gpgme: the signing key must be valid today.
  try {
    await signer.getSigningKey(only.keyID, new Date(), undefined, OPENPGP_FULL_CONFIG)
  } catch {
    throw new CofferError(
      'ERR_SIGN_SIGNATURE_INVALID',
      'the signing key is expired, revoked or not valid for signing',
    )
  }
  return { payload: result.data as Uint8Array, signer: fingerprintOf(signer) }
}

function armoredText(data: Uint8Array, kind: string): string | undefined {
  const head = Buffer.from(data.subarray(0, 64)).toString('latin1').trimStart()
  if (!head.startsWith(`-----BEGIN PGP ${kind}-----`)) return undefined
  return Buffer.from(data).toString('utf8')
}

/** OpenPGP.js messages name the problem without key material; keep them short. */
function reason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return msg.length > 200 ? `${msg.slice(0, 197)}...` : msg
}
