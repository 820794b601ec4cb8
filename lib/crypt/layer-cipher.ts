import { createCipheriv, createHmac, randomBytes } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import type { Digest } from '../oci/digest.js'
import { AES_256_CTR_HMAC_SHA256, type PrivateOptions, type PublicOptions } from './block-cipher-options.js'
import { decryptFailed } from './decrypt-failed.js'
import { LayerDecryption, type LayerKey } from './layer-decryption.js'
import { CofferError } from '../util/errors.js'

/**
 * ocicrypt's layer cipher `AES_256_CTR_HMAC_SHA256` (`blockcipher/blockcipher_aes_ctr.go`):
 * AES-256-CTR with the 16-byte nonce as the initial 128-bit big-endian counter block (Go
 * `cipher.NewCTR`, OpenSSL `aes-256-ctr`), then HMAC-SHA256 over the whole ciphertext, keyed with
 * the same 32-byte key. Ciphertext length equals plaintext length; the MAC is known only at EOF.
 */
export interface LayerEncryptor {
  /** Plaintext in, ciphertext out. */
  readonly stream: Transform
  /** After the stream ended: the options to wrap (private) and to publish (public). */
  options(): { privateOptions: PrivateOptions; publicOptions: PublicOptions }
}

/** A fresh random key and nonce per layer; `digest` is the plaintext layer's, as ocicrypt records it. */
export function createLayerEncryptor(plaintextDigest: Digest): LayerEncryptor {
  const symkey = randomBytes(32)
  const nonce = randomBytes(16)
  const cipher = createCipheriv('aes-256-ctr', symkey, nonce)
  const mac = createHmac('sha256', symkey)
  let hmac: Buffer | undefined
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      const out = cipher.update(chunk)
      mac.update(out)
      cb(null, out)
    },
    flush(cb: TransformCallback) {
      const tail = cipher.final() // empty for CTR, kept for form
      if (tail.length) {
        mac.update(tail)
        this.push(tail)
      }
      hmac = mac.digest()
      cb()
    },
  })
  return {
    stream,
    options() {
      if (!hmac) throw new CofferError('ERR_INTERNAL', 'layer options read before the layer was encrypted')
      return layerOptions(symkey, nonce, plaintextDigest, hmac)
    },
  }
}

/** The options of a freshly encrypted layer, laid out as ocicrypt lays them out (the nonce is private). */
export function layerOptions(
  symkey: Buffer,
  nonce: Buffer,
  plaintextDigest: Digest,
  hmac: Buffer,
): { privateOptions: PrivateOptions; publicOptions: PublicOptions } {
  return {
    privateOptions: { symkey, digest: plaintextDigest, cipherOptions: { nonce } },
    publicOptions: { cipher: AES_256_CTR_HMAC_SHA256, hmac, cipherOptions: {} },
  }
}

/**
 * Ciphertext in, plaintext out. The HMAC is checked at EOF, in constant time; on a mismatch the
 * stream fails with ERR_CRYPT_DECRYPT_FAILED ('decryption failed'), so whoever consumes it must
 * treat everything it read as untrusted until the stream ended cleanly (the copy spools it; the
 * pull unpacks into staging). With `plaintextDigest` (the digest the private options recorded) the
 * plaintext is hashed in the same pass and a mismatch fails the same way, after the HMAC.
 */
export function createLayerDecryptor(
  priv: PrivateOptions,
  pub: PublicOptions,
  plaintextDigest?: Digest,
): Transform {
  const decryption = new LayerDecryption(layerKey(priv, pub), plaintextDigest)
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      cb(null, decryption.update(chunk))
    },
    flush(cb: TransformCallback) {
      try {
        const tail = decryption.final()
        if (tail.length) this.push(tail)
      } catch (err) {
        return cb(err as Error)
      }
      cb()
    },
  })
}

/** The layer's key material, checked as `layerDecryptionKey` checks it. */
export function layerKey(priv: PrivateOptions, pub: PublicOptions): LayerKey {
  return { ...layerDecryptionKey(priv, pub), hmac: pub.hmac }
}

/**
 * The key and initial counter block of an encrypted layer, after checking that coffer supports
 * its cipher and that the options have the right shapes (a mismatch is ERR_CRYPT_DECRYPT_FAILED).
 */
export function layerDecryptionKey(priv: PrivateOptions, pub: PublicOptions): { key: Buffer; nonce: Buffer } {
  if (pub.cipher !== AES_256_CTR_HMAC_SHA256) {
    throw new CofferError(
      'ERR_CRYPT_UNSUPPORTED',
      `layer cipher "${pub.cipher.slice(0, 64)}" is not supported (only ${AES_256_CTR_HMAC_SHA256})`,
    )
  }
  // As ocicrypt's GetOpt: the nonce may sit in the public or the private options.
  const nonce = pub.cipherOptions.nonce ?? priv.cipherOptions.nonce
  if (!nonce || nonce.length !== 16 || priv.symkey.length !== 32 || pub.hmac.length !== 32)
    throw decryptFailed()
  return { key: priv.symkey, nonce }
}
