/**
 * What `coffer keyprovider` puts into the annotation: the private options as a JWE encrypted to
 * one or more 256-bit KEKs, each named by a key id (`kid`).
 *
 * Format: JWE General JSON Serialization (RFC 7516 §7.2.1), protected header `{"enc":"A256GCM"}`,
 * one recipient per KEK with unprotected header `{"alg":"A256KW","kid":"<kid>"}` and the CEK
 * wrapped with AES Key Wrap (RFC 3394). A256KW rather than `dir` because one ocicrypt keywrap
 * call must serve every recipient of the provider at once, and `dir` allows only one. The `kid`
 * is a hint to pick the KEK; it is not integrity-protected, and a wrong one simply fails to unwrap.
 * The KBS variant will reuse this format with the KEK fetched from the KBS by `kid`.
 *
 * Recipient parameters (`provider:<name>:<params>`, spec §2.2) use coco_keyprovider's `k=v::k=v`
 * syntax; the one key is `kid`. `Enabled` (what `provider:<name>` alone gives) means: on wrap
 * the KEK `default`, on unwrap whichever configured KEK the JWE names.
 */
import { flattenedDecrypt, GeneralEncrypt, type FlattenedJWE } from 'jose'
import { z } from 'zod'
import { CofferError } from '../../util/errors.js'
import { MAX_KEK_RECIPIENTS } from './limits.js'
import { decryptFailed } from '../decrypt-failed.js'

export const KEK_ALG = 'A256KW'
export const KEK_ENC = 'A256GCM'
export const KEK_BYTES = 32
/** The kid of a KEK given without one, and the one `Enabled` wraps for. */
export const DEFAULT_KID = 'default'
const KID = /^[A-Za-z0-9._-]{1,64}$/

/** KEKs by kid. */
export type Keyring = ReadonlyMap<string, Uint8Array>

/** Throws ERR_CRYPT_KEY_INVALID unless `kid` is a usable key id. */
export function checkKid(kid: string, source: string): string {
  if (!KID.test(kid))
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `${source}: key id "${kid}" must be 1-64 letters, digits, ".", "_" or "-"`,
    )
  return kid
}

/**
 * One recipient parameter → the kid it selects, or undefined for `Enabled` (or empty).
 * Unknown keys are ERR_CRYPT_RECIPIENT_INVALID, so a typo never wraps for the default KEK.
 */
export function kidFromParameter(param: Uint8Array): string | undefined {
  const text = Buffer.from(param).toString('utf8')
  if (text === '' || text === 'Enabled') return undefined
  let kid: string | undefined
  for (const pair of text.split('::')) {
    const eq = pair.indexOf('=')
    const key = eq > 0 ? pair.slice(0, eq) : pair
    if (key !== 'kid' || eq < 0)
      throw new CofferError(
        'ERR_CRYPT_RECIPIENT_INVALID',
        `key provider parameter "${key}" is not known; use kid=<key id>`,
      )
    kid = checkKid(pair.slice(eq + 1), 'key provider parameter kid')
  }
  return kid
}

/** Encrypts `plaintext` to the KEKs named by `kids` (deduplicated, in order). */
export async function wrapWithKeks(
  keyring: Keyring,
  kids: readonly string[],
  plaintext: Uint8Array,
): Promise<Buffer> {
  const unique = [...new Set(kids)]
  if (unique.length === 0) throw new CofferError('ERR_CRYPT_NO_KEY', 'no KEK to wrap for')
  if (unique.length > MAX_KEK_RECIPIENTS)
    throw new CofferError('ERR_TOO_LARGE', `more than ${MAX_KEK_RECIPIENTS} KEKs in one wrap`)
  const jwe = new GeneralEncrypt(new Uint8Array(plaintext)).setProtectedHeader({ enc: KEK_ENC })
  for (const kid of unique) {
    const kek = keyring.get(kid)
    if (!kek) throw new CofferError('ERR_CRYPT_NO_KEY', `the key provider has no KEK "${kid}"`)
    jwe.addRecipient(kek).setUnprotectedHeader({ alg: KEK_ALG, kid })
  }
  return Buffer.from(JSON.stringify(await jwe.encrypt()))
}

const generalJweSchema = z.looseObject({
  protected: z.string(),
  recipients: z
    .array(
      z.looseObject({
        header: z.looseObject({ kid: z.string().optional() }).optional(),
        encrypted_key: z.string(),
      }),
    )
    .min(1)
    .max(MAX_KEK_RECIPIENTS),
  iv: z.string(),
  ciphertext: z.string(),
  tag: z.string(),
  aad: z.string().optional(),
  unprotected: z.record(z.string(), z.unknown()).optional(),
})

/**
 * Decrypts a `wrapWithKeks` JWE with the KEKs `kids` selects (undefined: any KEK the JWE names
 * that the keyring holds). Every failure, whatever the reason, is the fixed
 * ERR_CRYPT_DECRYPT_FAILED (STYLE §6): no kid, no cause.
 */
export async function unwrapWithKeks(
  keyring: Keyring,
  kids: readonly (string | undefined)[],
  wrapped: Uint8Array,
): Promise<Buffer> {
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(wrapped).toString('utf8'))
  } catch {
    throw decryptFailed()
  }
  const parsed = generalJweSchema.safeParse(json)
  if (!parsed.success) throw decryptFailed()
  const { recipients, ...shared } = parsed.data
  const wanted = kids.length === 0 ? [undefined] : kids
  for (const selector of wanted) {
    for (const r of recipients) {
      const kid = r.header?.kid
      if (kid === undefined || (selector !== undefined && kid !== selector)) continue
      const kek = keyring.get(kid)
      if (!kek) continue
      try {
        const flat: FlattenedJWE = { ...shared, header: r.header, encrypted_key: r.encrypted_key }
        const { plaintext } = await flattenedDecrypt(flat, kek, {
          keyManagementAlgorithms: [KEK_ALG],
          contentEncryptionAlgorithms: [KEK_ENC],
        })
        return Buffer.from(plaintext)
      } catch {
        // wrong KEK or tampered JWE: try the next, then fail alike
      }
    }
  }
  throw decryptFailed()
}
