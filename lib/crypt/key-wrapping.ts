import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { MAX_KEYS_ANNOTATION_BYTES } from '../util/limits.js'
import { decryptFailed } from './decrypt-failed.js'
import {
  ENC_KEYS_ANNOTATION_PREFIX,
  type DecryptConfig,
  type EncryptConfig,
  type KeyWrapper,
} from './keywrap.js'

/**
 * Wraps private options for every recipient: one annotation per wrapper that has recipients, its
 * value the base64 of the wrapper's output (ocicrypt `encryption.go`). Throws ERR_CRYPT_NO_KEY
 * when no wrapper has a recipient, so an image is never "encrypted" for nobody.
 */
export async function wrapForRecipients(
  wrappers: readonly KeyWrapper[],
  ec: EncryptConfig,
  privateOptions: Uint8Array,
  o: Io = {},
): Promise<Record<string, string>> {
  const annotations: Record<string, string> = {}
  for (const w of wrappers) {
    if (!w.hasRecipients(ec)) continue
    annotations[w.annotationId] = Buffer.from(await w.wrapKeys(ec, privateOptions, o)).toString('base64')
  }
  if (Object.keys(annotations).length === 0)
    throw new CofferError('ERR_CRYPT_NO_KEY', 'no recipient to encrypt for: give --encryption-key')
  return annotations
}

/**
 * Finds the private options of an encrypted layer: for every `enc.keys.*` annotation a known
 * wrapper can read, each comma-separated element is tried with the offered keys (ocicrypt
 * `preUnwrapKey`). Wrappers without usable keys are skipped; the first success wins.
 */
export async function unwrapPrivateOptions(
  wrappers: readonly KeyWrapper[],
  dc: DecryptConfig,
  annotations: Record<string, string>,
  where: string,
  o: Io = {},
): Promise<Uint8Array> {
  let tried = false
  for (const w of wrappers) {
    const value = annotations[w.annotationId]
    if (value === undefined || w.noPossibleKeys(dc)) continue
    if (value.length > MAX_KEYS_ANNOTATION_BYTES)
      throw new CofferError(
        'ERR_CRYPT_OPTIONS_INVALID',
        `${where}: the ${w.annotationId} annotation is too large`,
      )
    for (const element of value.split(',')) {
      tried = true
      try {
        return await w.unwrapKey(dc, Buffer.from(element, 'base64'), o)
      } catch (err) {
        if (!(err instanceof CofferError && err.code === 'ERR_CRYPT_DECRYPT_FAILED')) throw err
      }
    }
  }
  if (tried) throw decryptFailed()
  const schemes = Object.keys(annotations)
    .filter((k) => k.startsWith(ENC_KEYS_ANNOTATION_PREFIX))
    .map((k) => k.slice(ENC_KEYS_ANNOTATION_PREFIX.length))
  throw new CofferError(
    'ERR_CRYPT_NO_KEY',
    `${where} is encrypted for ${schemes.join(', ') || 'an unknown scheme'}; give a matching --decryption-key`,
  )
}
