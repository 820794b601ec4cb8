/**
 * ocicrypt's `pkcs7` key wrapper (`keywrap/pkcs7/keywrapper_pkcs7.go`, spec §1.6/§1.7): the
 * layer's private options JSON becomes one CMS EnvelopedData for every recipient certificate at
 * once, AES-128-GCM content encryption and RSAES-PKCS1-v1_5 key transport. The DER layout,
 * including go.mozilla.org/pkcs7's odd GCM parameters, is in `./cms.ts`.
 *
 * Recipients are x509 certificates with RSA keys (`ec.x509s`). Unwrapping needs the private key
 * and the certificate (`dc.privkeys` + `dc.x509s`): the certificate's issuer and serial pick the
 * RecipientInfo, the private key must belong to the certificate's public key.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  publicEncrypt,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto'
import type { DecryptConfig, EncryptConfig, KeyWrapper } from '../../../lib/crypt/keywrap.js'
import { parsePrivateKey } from '../../../lib/crypt/keys.js'
import { CofferError } from '../../../lib/util/errors.js'
import { throwIfAborted, type Io } from '../../../lib/util/io.js'
import {
  GCM_NONCE_BYTES,
  GCM_TAG_BYTES,
  OID_AES128_GCM,
  OID_AES256_GCM,
  OID_RSA_ENCRYPTION,
  decodeEnvelope,
  encodeEnvelope,
  namesCertificate,
  parseCertificate,
  readGcmParameters,
  type RecipientCert,
} from './cms.js'
import { rsaDecryptPkcs1v15 } from './pkcs1v15.js'
import { decryptFailed } from '../../../lib/crypt/decrypt-failed.js'
import { pkcs7Selection } from './selection.js'

export { PKCS7_ANNOTATION } from './selection.js'
/**
 * Largest EnvelopedData unwrapping parses (an annotation element, base64-decoded); about 300
 * bytes per recipient plus the ~200-byte options. Kept here, beside its one reader.
 */
export const MAX_PKCS7_BYTES = 1024 * 1024
/** Recipients of one EnvelopedData that wrapping accepts (as MAX_JWE_RECIPIENTS). */
export const MAX_PKCS7_RECIPIENTS = 256

/** ocicrypt sets `pkcs7.ContentEncryptionAlgorithm = EncryptionAlgorithmAES128GCM`. */
const CEK_BYTES = 16
/** AES-GCM key sizes by OID; go.mozilla.org/pkcs7 decrypts both, ocicrypt writes 128. CBC/DES are refused (no integrity). */
const GCM_KEY_BYTES: Readonly<Record<string, number>> = { [OID_AES128_GCM]: 16, [OID_AES256_GCM]: 32 }
/** Smaller RSA moduli are refused for new recipients, as in the jwe wrapper. */
const MIN_RSA_BITS = 2048

/** A certificate offered for decryption, with the private key that belongs to it. */
interface KeyPair {
  cert: RecipientCert
  key: KeyObject
}

class Pkcs7KeyWrapper implements KeyWrapper {
  readonly name = pkcs7Selection.name
  readonly annotationId = pkcs7Selection.annotationId
  readonly hasRecipients = pkcs7Selection.hasRecipients
  readonly noPossibleKeys = pkcs7Selection.noPossibleKeys

  async wrapKeys(ec: EncryptConfig, privateOptions: Uint8Array, o: Io = {}): Promise<Uint8Array> {
    throwIfAborted(o.signal)
    const x509s = ec.x509s ?? []
    if (x509s.length === 0)
      throw new CofferError('ERR_CRYPT_NO_KEY', 'pkcs7: no recipient certificate to wrap for')
    if (x509s.length > MAX_PKCS7_RECIPIENTS) {
      throw new CofferError('ERR_TOO_LARGE', `pkcs7: more than ${MAX_PKCS7_RECIPIENTS} recipients`)
    }
    const certs = x509s.map((bytes, i) => recipientCert(bytes, `pkcs7 recipient ${i + 1}`))
    const cek = randomBytes(CEK_BYTES)
    try {
      const nonce = randomBytes(GCM_NONCE_BYTES)
      const cipher = createCipheriv('aes-128-gcm', cek, nonce, { authTagLength: GCM_TAG_BYTES })
      // go's gcm.Seal: ciphertext || tag, no AAD.
      const sealed = Buffer.concat([cipher.update(privateOptions), cipher.final(), cipher.getAuthTag()])
      const recipients = certs.map((cert) => ({
        cert,
        encryptedKey: publicEncrypt({ key: cert.x509.publicKey, padding: constants.RSA_PKCS1_PADDING }, cek),
      }))
      return encodeEnvelope({ recipients, nonce, sealed })
    } catch (cause) {
      // recipientCert has checked every certificate, so this is a bug or a runtime gap.
      throw new CofferError('ERR_INTERNAL', 'pkcs7: wrapping the layer key failed', { cause })
    } finally {
      cek.fill(0)
    }
  }

  async unwrapKey(dc: DecryptConfig, wrapped: Uint8Array, o: Io = {}): Promise<Uint8Array> {
    throwIfAborted(o.signal)
    if (wrapped.byteLength > MAX_PKCS7_BYTES) {
      throw new CofferError(
        'ERR_TOO_LARGE',
        `the pkcs7 annotation is larger than the ${MAX_PKCS7_BYTES}-byte limit`,
      )
    }
    const pairs = await keyPairsFrom(dc)
    const envelope = decodeEnvelope(wrapped)
    if (!envelope) throw decryptFailed()
    const keyBytes = GCM_KEY_BYTES[envelope.contentEncryptionAlgorithm]
    const gcm = envelope.parameters && readGcmParameters(envelope.parameters)
    if (!keyBytes || !gcm || gcm.nonce.length !== GCM_NONCE_BYTES || gcm.tagLength !== GCM_TAG_BYTES)
      throw decryptFailed()
    if (envelope.encryptedContent.length < GCM_TAG_BYTES) throw decryptFailed()
    for (const r of envelope.recipients) {
      if (r.keyEncryptionAlgorithm !== OID_RSA_ENCRYPTION) continue
      for (const { cert, key } of pairs) {
        if (!namesCertificate(r, cert)) continue
        throwIfAborted(o.signal)
        let cek: Buffer
        try {
          cek = rsaDecryptPkcs1v15(key, r.encryptedKey, keyBytes)
        } catch {
          continue // a ciphertext that does not fit the modulus: public, but still the fixed failure
        }
        try {
          const plain = openGcm(cek, gcm.nonce, envelope.encryptedContent)
          if (plain) return plain
        } finally {
          cek.fill(0)
        }
      }
    }
    throw decryptFailed()
  }
}

/** A pkcs7 KeyWrapper (ocicrypt-compatible). Stateless; one instance may serve every layer. */
export function createPkcs7KeyWrapper(): KeyWrapper {
  return new Pkcs7KeyWrapper()
}

// === wrapping

function recipientCert(bytes: Uint8Array, source: string): RecipientCert {
  let cert: RecipientCert
  try {
    cert = parseCertificate(bytes)
  } catch {
    throw new CofferError('ERR_CRYPT_KEY_INVALID', `${source} is not an x509 certificate (PEM or DER)`)
  }
  const key = cert.x509.publicKey
  if (key.asymmetricKeyType !== 'rsa') {
    throw new CofferError(
      'ERR_CRYPT_UNSUPPORTED',
      `${source}: pkcs7 needs a certificate with an RSA key, not ${key.asymmetricKeyType ?? 'unknown'}`,
    )
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  if (bits < MIN_RSA_BITS) {
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `${source}: a ${bits}-bit RSA key is too small; pkcs7 needs ${MIN_RSA_BITS} bits or more`,
    )
  }
  return cert
}

// === unwrapping

/**
 * Offered certificates paired with the offered private keys that belong to them (same public
 * key). Private-key files that are no private key are skipped (certificates share the list, as in
 * ocicrypt); a key with a missing or wrong password is ERR_CRYPT_KEY_INVALID (parsePrivateKey).
 * A `x509s` entry that is no certificate is ERR_CRYPT_KEY_INVALID, as ocicrypt's collectX509s fails.
 */
async function keyPairsFrom(dc: DecryptConfig): Promise<KeyPair[]> {
  const keys: { key: KeyObject; spki: Buffer }[] = []
  for (const [i, bytes] of (dc.privkeys ?? []).entries()) {
    const key = await parsePrivateKey(bytes, dc.privkeysPasswords?.[i], `decryption key ${i + 1}`)
    if (!key || key.asymmetricKeyType !== 'rsa') continue
    keys.push({ key, spki: spkiOf(key) })
  }
  const pairs: KeyPair[] = []
  for (const [i, bytes] of (dc.x509s ?? []).entries()) {
    let cert: RecipientCert
    try {
      cert = parseCertificate(bytes)
    } catch {
      throw new CofferError(
        'ERR_CRYPT_KEY_INVALID',
        `decryption certificate ${i + 1} is not an x509 certificate`,
      )
    }
    if (cert.x509.publicKey.asymmetricKeyType !== 'rsa') continue
    const spki = spkiOf(cert.x509.publicKey)
    for (const k of keys) {
      if (k.spki.length === spki.length && timingSafeEqual(k.spki, spki)) pairs.push({ cert, key: k.key })
    }
  }
  return pairs
}

/** SPKI DER of a public key, or of a private key's public half. */
function spkiOf(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  return Buffer.from(pub.export({ format: 'der', type: 'spki' }))
}

/** AES-GCM open of ciphertext || tag; undefined when the tag does not verify. */
function openGcm(cek: Buffer, nonce: Buffer, sealed: Buffer): Buffer | undefined {
  const algorithm = cek.length === 32 ? 'aes-256-gcm' : 'aes-128-gcm'
  const split = sealed.length - GCM_TAG_BYTES
  try {
    const decipher = createDecipheriv(algorithm, cek, nonce, { authTagLength: GCM_TAG_BYTES })
    decipher.setAuthTag(sealed.subarray(split))
    return Buffer.concat([decipher.update(sealed.subarray(0, split)), decipher.final()])
  } catch {
    return undefined
  }
}
