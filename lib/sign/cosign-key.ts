/**
 * cosign key files and signatures over cosign payloads.
 *
 * Private key (cosign `pkg/cosign/keys.go`, go-securesystemslib `encrypted/encrypted.go`): PEM
 * `ENCRYPTED SIGSTORE PRIVATE KEY` (legacy `ENCRYPTED COSIGN PRIVATE KEY` is read too) whose body
 * is JSON `{kdf:{name:"scrypt",params:{N,r,p},salt}, cipher:{name:"nacl/secretbox",nonce}, ciphertext}`;
 * key = scrypt(password, salt, N, r=8, p=1, 32 bytes); ciphertext = secretbox(PKCS#8 DER) with the
 * 16-byte Poly1305 tag first. Readers accept only N ∈ {32768, 65536, 131072}, r=8, p=1, as
 * go-securesystemslib does, so a hostile file cannot ask for a huge scrypt.
 *
 * Signatures (sigstore `pkg/signature`): ECDSA over SHA-256 (ASN.1 DER), RSA PKCS#1 v1.5 with
 * SHA-256, or Ed25519, base64 (std) in the `dev.cosignproject.cosign/signature` annotation.
 * c/image verifies with SHA-256 whatever the curve, so coffer generates P-256 keys only.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  scrypt as scryptCb,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto'
import { promisify } from 'node:util'
import { secretbox } from '@noble/ciphers/salsa.js'
import { z } from 'zod'
import { CofferError } from '../util/errors.js'

const scrypt = promisify(scryptCb) as (
  password: string | Buffer,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>

export const COSIGN_PRIVATE_KEY_PEM = 'ENCRYPTED SIGSTORE PRIVATE KEY'
const LEGACY_PRIVATE_KEY_PEM = 'ENCRYPTED COSIGN PRIVATE KEY'
/** go-securesystemslib's current default (`Encrypt`). */
const SCRYPT_N = 65536
const ACCEPTED_N = new Set([32768, 65536, 131072])

const encryptedKeySchema = z.looseObject({
  kdf: z.looseObject({
    name: z.literal('scrypt'),
    params: z.looseObject({ N: z.number().int(), r: z.literal(8), p: z.literal(1) }),
    salt: z.base64(),
  }),
  cipher: z.looseObject({ name: z.literal('nacl/secretbox'), nonce: z.base64() }),
  ciphertext: z.base64(),
})

/** A new P-256 key pair: the encrypted private key PEM and the PKIX public key PEM. */
export async function generateCosignKeyPair(
  password: string,
): Promise<{ privatePem: string; publicPem: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const der = privateKey.export({ format: 'der', type: 'pkcs8' })
  return {
    privatePem: await encryptCosignPrivateKey(der, password),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  }
}

/** Wraps a PKCS#8 DER key in cosign's encrypted PEM. */
export async function encryptCosignPrivateKey(pkcs8Der: Uint8Array, password: string): Promise<string> {
  const salt = randomBytes(32)
  const nonce = randomBytes(24)
  const key = await deriveKey(password, salt, SCRYPT_N)
  const ciphertext = secretbox(key, nonce).seal(pkcs8Der)
  const body = JSON.stringify({
    kdf: { name: 'scrypt', params: { N: SCRYPT_N, r: 8, p: 1 }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(ciphertext).toString('base64'),
  })
  return pem(COSIGN_PRIVATE_KEY_PEM, Buffer.from(body))
}

/**
 * Opens a cosign private key. A wrong password and a tampered file look alike
 * (ERR_SIGN_KEY_PASSWORD, fixed message); a malformed file is ERR_SIGN_KEY_INVALID.
 */
export async function decryptCosignPrivateKey(pemText: string, password: string): Promise<KeyObject> {
  const block = unpem(pemText, [COSIGN_PRIVATE_KEY_PEM, LEGACY_PRIVATE_KEY_PEM])
  let json: unknown
  try {
    json = JSON.parse(block.toString('utf8'))
  } catch {
    throw new CofferError('ERR_SIGN_KEY_INVALID', 'the cosign private key is not valid JSON inside its PEM')
  }
  const parsed = encryptedKeySchema.safeParse(json)
  if (!parsed.success)
    throw new CofferError('ERR_SIGN_KEY_INVALID', 'the cosign private key has an unknown format')
  const { kdf, cipher, ciphertext } = parsed.data
  if (!ACCEPTED_N.has(kdf.params.N))
    throw new CofferError(
      'ERR_SIGN_KEY_INVALID',
      `the cosign private key asks for scrypt N=${kdf.params.N}, which is not accepted`,
    )
  const nonce = Buffer.from(cipher.nonce, 'base64')
  if (nonce.length !== 24)
    throw new CofferError('ERR_SIGN_KEY_INVALID', 'the cosign private key has a bad nonce')
  const key = await deriveKey(password, Buffer.from(kdf.salt, 'base64'), kdf.params.N)
  let der: Uint8Array
  try {
    der = secretbox(key, nonce).open(Buffer.from(ciphertext, 'base64'))
  } catch {
    throw new CofferError('ERR_SIGN_KEY_PASSWORD', 'cannot decrypt the cosign private key: wrong password')
  }
  try {
    return createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' })
  } catch {
    throw new CofferError('ERR_SIGN_KEY_INVALID', 'the cosign private key does not hold a PKCS#8 key')
  }
}

/** Reads a PEM public key (PKIX `PUBLIC KEY`) for verifying cosign signatures. */
export function readCosignPublicKey(data: Uint8Array, what: string): KeyObject {
  let key: KeyObject
  try {
    key = createPublicKey({ key: Buffer.from(data), format: 'pem' })
  } catch (cause) {
    throw new CofferError('ERR_SIGN_KEY_INVALID', `${what} is not a PEM public key`, { cause })
  }
  if (!['ec', 'rsa', 'ed25519'].includes(key.asymmetricKeyType ?? ''))
    throw new CofferError(
      'ERR_SIGN_KEY_INVALID',
      `${what}: ${key.asymmetricKeyType} keys cannot verify cosign signatures`,
    )
  return key
}

/** Signs a payload; returns the base64 signature cosign stores in its annotation. */
export function signCosignPayload(payload: Uint8Array, key: KeyObject): string {
  const signature =
    key.asymmetricKeyType === 'ed25519'
      ? nodeSign(null, payload, key)
      : nodeSign('sha256', payload, { key, dsaEncoding: 'der' })
  return signature.toString('base64')
}

/**
 * True if `signatureB64` is a valid signature of `payload` by `key`. c/image hashes with SHA-256
 * for every key type; image-rs strips newlines from the base64 first, and so do we.
 */
export function verifyCosignSignature(payload: Uint8Array, signatureB64: string, key: KeyObject): boolean {
  const cleaned = signatureB64.replace(/[\r\n]/g, '')
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(cleaned)) return false
  const signature = Buffer.from(cleaned, 'base64')
  try {
    return key.asymmetricKeyType === 'ed25519'
      ? nodeVerify(null, payload, key, signature)
      : nodeVerify('sha256', payload, { key, dsaEncoding: 'der' }, signature)
  } catch {
    return false
  }
}

async function deriveKey(password: string, salt: Buffer, n: number): Promise<Buffer> {
  // 128 * N * r bytes of memory: 128 MiB at N=131072.
  return scrypt(Buffer.from(password, 'utf8'), salt, 32, { N: n, r: 8, p: 1, maxmem: 256 * 1024 * 1024 })
}

function pem(type: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? []
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`
}

function unpem(text: string, types: readonly string[]): Buffer {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text)
  if (!m || !types.includes(m[1]!))
    throw new CofferError(
      'ERR_SIGN_KEY_INVALID',
      `not a cosign private key (expected PEM ${types.join(' or ')})`,
    )
  // Go's pem allows headers before the body; cosign writes none, so a ':' line is malformed here.
  const body = m[2]!.replace(/\s+/g, '')
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body))
    throw new CofferError('ERR_SIGN_KEY_INVALID', 'the PEM body is not base64')
  return Buffer.from(body, 'base64')
}
