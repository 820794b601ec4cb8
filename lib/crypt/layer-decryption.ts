import { createDecipheriv, createHmac, timingSafeEqual, type Decipher, type Hmac } from 'node:crypto'
import { DigestCheck, type Digest } from '../oci/digest.js'
import { decryptFailed } from './decrypt-failed.js'

/**
 * What decrypting one layer takes, as plain data (it is posted to worker threads): the AES key,
 * the initial counter block and the HMAC the ciphertext must have.
 */
export interface LayerKey {
  readonly key: Uint8Array
  readonly nonce: Uint8Array
  readonly hmac: Uint8Array
}

/**
 * One layer's decryption, synchronous, chunk by chunk: AES-256-CTR, the HMAC over the ciphertext
 * and, when given, the plaintext digest the private options recorded. `final` checks both and
 * throws ERR_CRYPT_DECRYPT_FAILED on a mismatch (the HMAC first); until it passed, every byte
 * `update` returned is untrusted. The copy's decrypting stream (layer-cipher.ts) and the pull's
 * layer checks (lib/image/layer-checks.ts, on worker threads: hence this file imports no schemas)
 * both run it.
 */
export class LayerDecryption {
  private readonly decipher: Decipher
  private readonly mac: Hmac
  private readonly plain: DigestCheck | undefined

  constructor(
    private readonly k: LayerKey,
    plaintextDigest?: Digest,
  ) {
    this.decipher = createDecipheriv('aes-256-ctr', k.key, k.nonce)
    this.mac = createHmac('sha256', k.key)
    this.plain = plaintextDigest ? new DigestCheck(plaintextDigest) : undefined
  }

  /** Ciphertext in, its plaintext out (as long as the input: CTR). */
  update(ciphertext: Uint8Array): Buffer {
    this.mac.update(ciphertext)
    const out = this.decipher.update(ciphertext)
    this.plain?.update(out)
    return out
  }

  /** After the last byte: the rest of the plaintext (empty for CTR), once both checks passed. */
  final(): Buffer {
    const tail = this.decipher.final()
    this.plain?.update(tail)
    if (!(this.k.hmac.length === 32 && timingSafeEqual(this.mac.digest(), this.k.hmac))) throw decryptFailed()
    try {
      this.plain?.verify()
    } catch {
      throw decryptFailed()
    }
    return tail
  }
}
