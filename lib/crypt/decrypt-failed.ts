import { CofferError } from '../util/errors.js'

/**
 * The one error for every crypto failure after key material was involved: a wrong key, a failed
 * HMAC or GCM tag, a tampered or truncated layer, malformed unwrapped options. One fixed message
 * that names no key, reason or offset (STYLE.md §6, as jose's JWEDecryptionFailed), and no
 * `cause`, so nothing about the secret path leaks through logs or error chains.
 */
export function decryptFailed(): CofferError {
  return new CofferError('ERR_CRYPT_DECRYPT_FAILED', 'decryption failed')
}
