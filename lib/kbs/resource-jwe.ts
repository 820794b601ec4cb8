/**
 * Encrypts a resource to the guest's session key as the KBS response JWE (trustee
 * `kbs/src/jwe/mod.rs`): flattened JSON, A256GCM content encryption, AAD = the protected header
 * as sent.
 *
 * Hand-written rather than jose's FlattenedEncrypt for one reason: the CoCo guest does not use the
 * received `protected` string as AAD but re-serializes the parsed header (kbs-types
 * `generate_aad`: compact, `alg`, `enc`, then other fields with `epk` members in `crv, kty, x, y`
 * order). jose emits `epk` members in another order, so the guest's GCM check would fail. Building
 * the header byte for byte here keeps both AADs identical.
 */
import {
  createCipheriv,
  createHash,
  createPublicKey,
  createECDH,
  publicEncrypt,
  constants,
  randomBytes,
  type KeyObject,
} from 'node:crypto'
import { CofferError } from '../util/errors.js'
import { Lru } from '../util/lru.js'
import type { JweResponse, TeePubKey } from './protocol.js'

const ECDH_ALG = 'ECDH-ES+A256KW'
const AES_KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex')

export function encryptResource(plaintext: Uint8Array, key: TeePubKey): JweResponse {
  const cek = randomBytes(32)
  const { header, encryptedKey } = key.kty === 'EC' ? wrapEcdh(cek, key) : wrapRsa(cek, key)
  const protectedB64 = Buffer.from(header).toString('base64url')
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', cek, iv)
  cipher.setAAD(Buffer.from(protectedB64, 'ascii'))
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return {
    protected: protectedB64,
    encrypted_key: encryptedKey.toString('base64url'),
    iv: iv.toString('base64url'),
    ciphertext: ciphertext.toString('base64url'),
    tag: cipher.getAuthTag().toString('base64url'),
  }
}

/** Parsed session keys: a guest fetches several resources with one key. */
const imported = new Lru<string, KeyObject>(1024)

function importKey(key: TeePubKey): KeyObject {
  const id = key.kty === 'EC' ? `${key.crv}.${key.x}.${key.y}` : `${key.n}.${key.e}`
  const hit = imported.get(id)
  if (hit) return hit
  const k = parseKey(key)
  imported.set(id, k)
  return k
}

function parseKey(key: TeePubKey): KeyObject {
  try {
    // The JWK is untrusted: node checks that EC points lie on the curve and RSA moduli parse.
    const { alg: _alg, ...jwk } = key
    return createPublicKey({ key: jwk, format: 'jwk' })
  } catch (err) {
    throw new CofferError('ERR_CRYPT_KEY_INVALID', `the tee-pubkey is not a valid ${key.kty} key`, {
      cause: err,
    })
  }
}

function wrapRsa(
  cek: Buffer,
  key: Extract<TeePubKey, { kty: 'RSA' }>,
): { header: string; encryptedKey: Buffer } {
  const publicKey = importKey(key)
  const bits = publicKey.asymmetricKeyDetails?.modulusLength ?? 0
  if (bits < 2048)
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `the tee-pubkey RSA modulus has ${bits} bits; at least 2048 are required`,
    )
  const encryptedKey =
    key.alg === 'RSA-OAEP-256'
      ? publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek)
      : publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, cek)
  return { header: JSON.stringify({ alg: key.alg, enc: 'A256GCM' }), encryptedKey }
}

const FIELD_BYTES = { 'P-256': 32, 'P-521': 66 } as const
const OPENSSL_CURVE = { 'P-256': 'prime256v1', 'P-521': 'secp521r1' } as const

/**
 * ECDH-ES with the raw-point ECDH API rather than KeyObjects: one scalar multiplication for the
 * ephemeral key, one for the shared secret, and no JWK import/export on the way (this is the hot
 * path of every resource request). `computeSecret` refuses a point that is not on the curve.
 */
function wrapEcdh(
  cek: Buffer,
  key: Extract<TeePubKey, { kty: 'EC' }>,
): { header: string; encryptedKey: Buffer } {
  const size = FIELD_BYTES[key.crv]
  const x = Buffer.from(key.x, 'base64url')
  const y = Buffer.from(key.y, 'base64url')
  if (x.length !== size || y.length !== size)
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `the tee-pubkey ${key.crv} coordinates must be ${size} bytes`,
    )
  const ecdh = createECDH(OPENSSL_CURVE[key.crv])
  const epk = ecdh.generateKeys()
  let z: Buffer
  try {
    z = ecdh.computeSecret(Buffer.concat([Buffer.from([0x04]), x, y]))
  } catch (err) {
    throw new CofferError('ERR_CRYPT_KEY_INVALID', 'the tee-pubkey is not a valid EC key', { cause: err })
  }
  const kek = concatKdf(z, ECDH_ALG, 256)
  const wrap = createCipheriv('id-aes256-wrap', kek, AES_KW_IV)
  const encryptedKey = Buffer.concat([wrap.update(cek), wrap.final()])
  // Member order is the protocol: see the module comment. epk is 0x04 ‖ X ‖ Y.
  const header = JSON.stringify({
    alg: ECDH_ALG,
    enc: 'A256GCM',
    epk: {
      crv: key.crv,
      kty: 'EC',
      x: epk.subarray(1, 1 + size).toString('base64url'),
      y: epk.subarray(1 + size).toString('base64url'),
    },
  })
  return { header, encryptedKey }
}

/** NIST SP 800-56A Concat KDF with SHA-256 as JWA §4.6.2 uses it (empty apu/apv). */
export function concatKdf(z: Uint8Array, algorithm: string, keyBits: number): Buffer {
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(n)
    return b
  }
  const alg = Buffer.from(algorithm, 'ascii')
  const otherInfo = Buffer.concat([u32(alg.length), alg, u32(0), u32(0), u32(keyBits)])
  const rounds = Math.ceil(keyBits / 256)
  const out: Buffer[] = []
  for (let i = 1; i <= rounds; i++)
    out.push(createHash('sha256').update(u32(i)).update(z).update(otherInfo).digest())
  return Buffer.concat(out).subarray(0, keyBits / 8)
}
