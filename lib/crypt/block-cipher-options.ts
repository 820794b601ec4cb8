import { z } from 'zod'
import { CofferError } from '../util/errors.js'
import { MAX_CRYPT_OPTIONS_BYTES } from '../util/limits.js'
import { isDigest, type Digest } from '../oci/digest.js'
import { decryptFailed } from './decrypt-failed.js'

/** The one layer cipher ocicrypt defines (`blockcipher.AES256CTR`). */
export const AES_256_CTR_HMAC_SHA256 = 'AES_256_CTR_HMAC_SHA256'

/**
 * What a recipient's key unwraps: the symmetric key, the digest of the plaintext layer, and the
 * nonce (ocicrypt `PrivateLayerBlockCipherOptions`). Secret: never logged, never written in clear.
 */
export interface PrivateOptions {
  symkey: Buffer
  digest: Digest
  cipherOptions: Record<string, Buffer>
}

/** Stored in clear in `org.opencontainers.image.enc.pubopts` (`PublicLayerBlockCipherOptions`). */
export interface PublicOptions {
  cipher: string
  hmac: Buffer
  cipherOptions: Record<string, Buffer>
}

/**
 * Serializes exactly as Go's encoding/json does for ocicrypt's structs: field order symkey,
 * digest, cipheroptions; `[]byte` as standard padded base64; map keys sorted (Go sorts map keys).
 */
export function serializePrivateOptions(p: PrivateOptions): Buffer {
  return Buffer.from(
    `{"symkey":${b64(p.symkey)},"digest":${JSON.stringify(p.digest)},"cipheroptions":${b64Map(p.cipherOptions)}}`,
  )
}

export function serializePublicOptions(p: PublicOptions): Buffer {
  return Buffer.from(
    `{"cipher":${JSON.stringify(p.cipher)},"hmac":${b64(p.hmac)},"cipheroptions":${b64Map(p.cipherOptions)}}`,
  )
}

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not base64')
const b64MapSchema = z.record(z.string(), base64).nullish()
const privateSchema = z.looseObject({
  symkey: base64,
  digest: z.string().optional(),
  cipheroptions: b64MapSchema,
})
const publicSchema = z.looseObject({
  cipher: z.string(),
  hmac: base64.nullish(),
  cipheroptions: b64MapSchema,
})

/** Parses unwrapped private options. Malformed input gets the fixed crypto failure: it came out of a key unwrap. */
export function parsePrivateOptions(bytes: Uint8Array): PrivateOptions {
  const parsed = privateSchema.safeParse(parseJson(bytes))
  if (!parsed.success) throw decryptFailed()
  const symkey = Buffer.from(parsed.data.symkey, 'base64')
  const digest = parsed.data.digest
  if (symkey.length !== 32 || (digest !== undefined && digest !== '' && !isDigest(digest)))
    throw decryptFailed()
  return { symkey, digest: (digest || '') as Digest, cipherOptions: decodeMap(parsed.data.cipheroptions) }
}

/** Parses `org.opencontainers.image.enc.pubopts` (base64 of the JSON). */
export function parsePublicOptions(annotation: string, where: string): PublicOptions {
  const raw = Buffer.from(annotation, 'base64')
  if (
    annotation.length > MAX_CRYPT_OPTIONS_BYTES ||
    raw.toString('base64').replace(/=+$/, '') !== annotation.replace(/=+$/, '')
  ) {
    throw new CofferError(
      'ERR_CRYPT_OPTIONS_INVALID',
      `${where}: the enc.pubopts annotation is not valid base64`,
    )
  }
  const parsed = publicSchema.safeParse(parseJson(raw))
  if (!parsed.success)
    throw new CofferError(
      'ERR_CRYPT_OPTIONS_INVALID',
      `${where}: the enc.pubopts annotation is not valid cipher options`,
    )
  if (parsed.data.cipher === '')
    throw new CofferError('ERR_CRYPT_OPTIONS_INVALID', `${where}: no cipher type provided`)
  return {
    cipher: parsed.data.cipher,
    hmac: Buffer.from(parsed.data.hmac ?? '', 'base64'),
    cipherOptions: decodeMap(parsed.data.cipheroptions),
  }
}

function parseJson(bytes: Uint8Array): unknown {
  if (bytes.length > MAX_CRYPT_OPTIONS_BYTES) return undefined
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    return undefined
  }
}

function decodeMap(m: Record<string, string> | null | undefined): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(m ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]))
}

function b64(b: Buffer): string {
  return JSON.stringify(b.toString('base64'))
}

function b64Map(m: Record<string, Buffer>): string {
  const keys = Object.keys(m).sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${b64(m[k]!)}`).join(',')}}`
}
