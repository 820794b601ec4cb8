/**
 * ocicrypt's `jwe` key wrapper (`keywrap/jwe/keywrapper_jwe.go`, spec §1.6) on top of `jose`: the
 * layer's private options JSON becomes one JWE, in JSON serialization, for every recipient at once.
 *
 * Byte shapes follow go-jose v2 as skopeo 1.9.3 writes them (checked in test/interop/jwe-skopeo.test.ts):
 * - one recipient: flattened JSON, `alg` (and `epk`) in the protected header next to `enc`;
 * - several: general JSON, protected header `{"enc":"A256GCM"}`, each recipient's `alg` (and `epk`)
 *   in its unprotected `header`. go-jose also copies recipient 0's `encrypted_key` to the top
 *   level; we do not write that copy, and ignore it when reading.
 * Members are written in go-jose's order (protected, recipients, encrypted_key, iv, ciphertext, tag).
 */
import type { KeyObject } from 'node:crypto'
import {
  FlattenedEncrypt,
  GeneralEncrypt,
  flattenedDecrypt,
  type FlattenedJWE,
  type GeneralJWE,
  type JWEContentEncryptionAlgorithm,
  type JWEKeyManagementAlgorithm,
} from 'jose'
import { z } from 'zod'
import type { DecryptConfig, EncryptConfig, KeyWrapper } from '../../../lib/crypt/keywrap.js'
import {
  keyKindOf,
  parsePrivateKey,
  parsePublicKey,
  type EcCurve,
  type KeyKind,
} from '../../../lib/crypt/keys.js'
import { CofferError } from '../../../lib/util/errors.js'
import { throwIfAborted, type Io } from '../../../lib/util/io.js'
import { MAX_JWE_BYTES, MAX_JWE_RECIPIENTS } from '../../../lib/util/limits.js'
import { decryptFailed } from '../../../lib/crypt/decrypt-failed.js'

/** The layer annotation this wrapper writes and reads. */
export const JWE_ANNOTATION = 'org.opencontainers.image.enc.keys.jwe'

/** Content encryption ocicrypt uses when wrapping. */
const CONTENT_ENCRYPTION = 'A256GCM'
/** Key management algorithms ocicrypt (HEAD) accepts on a JWK recipient; its defaults are the first and last. */
const KEY_ALGORITHMS = [
  'RSA-OAEP',
  'RSA-OAEP-256',
  'ECDH-ES+A128KW',
  'ECDH-ES+A192KW',
  'ECDH-ES+A256KW',
] as const satisfies readonly JWEKeyManagementAlgorithm[]
type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number]
/** Content encryptions go-jose decrypts; ocicrypt leaves the choice to the JWE. */
const CONTENT_ENCRYPTIONS: JWEContentEncryptionAlgorithm[] = [
  'A128GCM',
  'A192GCM',
  'A256GCM',
  'A128CBC-HS256',
  'A192CBC-HS384',
  'A256CBC-HS512',
]
/** jose (WebCrypto) refuses RSA-OAEP with smaller moduli; ocicrypt does not, but such keys are weak anyway. */
const MIN_RSA_BITS = 2048

/** One recipient, ready for jose. */
interface Recipient {
  alg: KeyAlgorithm
  key: KeyObject
}

/** A private key we can try, with what it fits. */
interface Candidate {
  key: KeyObject
  kind: KeyKind
  curve?: EcCurve
  bits?: number
}

const headerSchema = z.record(z.string(), z.unknown())
const recipientSchema = z.looseObject({
  header: headerSchema.optional(),
  encrypted_key: z.string().optional(),
})
/** RFC 7516 §7.2, loosely: unknown members (and go-jose's top-level encrypted_key copy) pass. */
const jweSchema = z.looseObject({
  protected: z.string().optional(),
  unprotected: headerSchema.optional(),
  header: headerSchema.optional(),
  encrypted_key: z.string().optional(),
  recipients: z.array(recipientSchema).min(1).optional(),
  aad: z.string().optional(),
  iv: z.string().optional(),
  ciphertext: z.string(),
  tag: z.string().optional(),
})
type ParsedJwe = z.infer<typeof jweSchema>

class JweKeyWrapper implements KeyWrapper {
  readonly name = 'jwe'
  readonly annotationId = JWE_ANNOTATION

  hasRecipients(ec: EncryptConfig): boolean {
    return (ec.pubkeys?.length ?? 0) > 0
  }

  /** As ocicrypt's NoPossibleKeys: jwe needs `privkeys`; whether they fit shows only on unwrap. */
  noPossibleKeys(dc: DecryptConfig): boolean {
    return (dc.privkeys?.length ?? 0) === 0
  }
  describeRecipients(wrapped: Uint8Array): string[] {
    const jwe = parseJwe(wrapped)
    const shared = protectedHeaderOf(jwe)
    const recipients = jwe.recipients ?? [{ header: jwe.header }]
    return recipients.map((r) => {
      const h = { ...shared, ...jwe.unprotected, ...r.header } as { alg?: unknown; epk?: { crv?: unknown } }
      const alg = typeof h.alg === 'string' ? h.alg : 'unknown alg'
      return typeof h.epk?.crv === 'string' ? `${alg} (${h.epk.crv})` : alg
    })
  }

  async wrapKeys(ec: EncryptConfig, privateOptions: Uint8Array, o: Io = {}): Promise<Uint8Array> {
    throwIfAborted(o.signal)
    const pubkeys = ec.pubkeys ?? []
    if (pubkeys.length === 0)
      throw new CofferError('ERR_CRYPT_NO_KEY', 'jwe: no recipient public key to wrap for')
    const recipients: Recipient[] = []
    for (const [i, bytes] of pubkeys.entries())
      recipients.push(await recipientFor(bytes, `jwe recipient ${i + 1}`))
    const plaintext = new Uint8Array(privateOptions)
    try {
      const [only] = recipients
      if (only && recipients.length === 1) {
        const jwe = await new FlattenedEncrypt(plaintext)
          .setProtectedHeader({ alg: only.alg, enc: CONTENT_ENCRYPTION })
          .encrypt(only.key)
        return serialize(jwe)
      }
      const general = new GeneralEncrypt(plaintext).setProtectedHeader({ enc: CONTENT_ENCRYPTION })
      for (const r of recipients) general.addRecipient(r.key).setUnprotectedHeader({ alg: r.alg })
      return serialize(await general.encrypt())
    } catch (cause) {
      // recipientFor has checked every key, so this is a bug or a runtime gap, not bad input.
      throw new CofferError('ERR_INTERNAL', 'jwe: wrapping the layer key failed', { cause })
    }
  }

  async unwrapKey(dc: DecryptConfig, wrapped: Uint8Array, o: Io = {}): Promise<Uint8Array> {
    throwIfAborted(o.signal)
    const jwe = parseJwe(wrapped)
    const candidates = await candidatesFrom(dc)
    const shared = protectedHeaderOf(jwe)
    for (const flat of flattenedRecipients(jwe)) {
      const header = { ...shared, ...jwe.unprotected, ...flat.header }
      for (const c of candidates) {
        if (!fits(c, header)) continue
        throwIfAborted(o.signal)
        try {
          const { plaintext } = await flattenedDecrypt(flat, c.key, {
            keyManagementAlgorithms: [...KEY_ALGORITHMS],
            contentEncryptionAlgorithms: CONTENT_ENCRYPTIONS,
            // ocicrypt never compresses; refusing "zip" keeps decompression bombs out.
            maxDecompressedLength: 0,
          })
          return Buffer.from(plaintext)
        } catch {
          // Wrong key, tampered JWE or bad header: all look the same from outside (STYLE §6).
        }
      }
    }
    throw decryptFailed()
  }
}

/** A jwe KeyWrapper (ocicrypt-compatible). Stateless; one instance may serve every layer. */
export function createJweKeyWrapper(): KeyWrapper {
  return new JweKeyWrapper()
}

// === wrapping

async function recipientFor(bytes: Uint8Array, source: string): Promise<Recipient> {
  const info = await parsePublicKey(bytes, source)
  const requested = info.jwk?.alg
  const alg = requested ?? (info.kind === 'rsa' ? 'RSA-OAEP' : 'ECDH-ES+A256KW')
  if (!isKeyAlgorithm(alg)) {
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `${source}: JWK alg "${alg}" is not one jwe uses (${KEY_ALGORITHMS.join(', ')})`,
    )
  }
  if ((info.kind === 'rsa') !== alg.startsWith('RSA-')) {
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `${source}: JWK alg "${alg}" does not fit a ${info.kind} key`,
    )
  }
  const bits = info.key.asymmetricKeyDetails?.modulusLength
  if (info.kind === 'rsa' && (bits ?? 0) < MIN_RSA_BITS) {
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `${source}: a ${bits}-bit RSA key is too small; jwe needs ${MIN_RSA_BITS} bits or more`,
    )
  }
  return { alg, key: info.key }
}

/** go-jose's member order (its rawJSONWebEncryption struct), so our output reads like skopeo's. */
function serialize(jwe: FlattenedJWE | GeneralJWE): Uint8Array {
  const g = jwe as Partial<FlattenedJWE & GeneralJWE>
  const ordered = {
    protected: g.protected,
    unprotected: g.unprotected,
    header: g.header,
    recipients: g.recipients?.map((r) => ({ header: r.header, encrypted_key: r.encrypted_key })),
    aad: g.aad,
    encrypted_key: g.encrypted_key,
    iv: g.iv,
    ciphertext: g.ciphertext,
    tag: g.tag,
  }
  // JSON.stringify leaves out the members that are undefined.
  return Buffer.from(JSON.stringify(ordered))
}

// === unwrapping

function parseJwe(wrapped: Uint8Array): ParsedJwe {
  if (wrapped.byteLength > MAX_JWE_BYTES) {
    throw new CofferError(
      'ERR_TOO_LARGE',
      `the jwe annotation is larger than the ${MAX_JWE_BYTES}-byte limit`,
    )
  }
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(wrapped.buffer, wrapped.byteOffset, wrapped.byteLength).toString('utf8'))
  } catch {
    // Not secret: the annotation is public. Anything past this point gets the fixed failure.
    throw new CofferError('ERR_CRYPT_OPTIONS_INVALID', 'the jwe annotation is not JSON')
  }
  const parsed = jweSchema.safeParse(json)
  if (!parsed.success) throw decryptFailed()
  if ((parsed.data.recipients?.length ?? 1) > MAX_JWE_RECIPIENTS) {
    throw new CofferError(
      'ERR_TOO_LARGE',
      `the jwe annotation has more than ${MAX_JWE_RECIPIENTS} recipients`,
    )
  }
  return parsed.data
}

/** Flattened or general JSON → one flattened JWE per recipient (RFC 7516 §7.2.1). */
function flattenedRecipients(jwe: ParsedJwe): FlattenedJWE[] {
  const shared = {
    protected: jwe.protected,
    unprotected: jwe.unprotected,
    aad: jwe.aad,
    iv: jwe.iv,
    ciphertext: jwe.ciphertext,
    tag: jwe.tag,
  }
  const recipients = jwe.recipients ?? [{ header: jwe.header, encrypted_key: jwe.encrypted_key }]
  return recipients.map((r) => dropUndefined({ ...shared, header: r.header, encrypted_key: r.encrypted_key }))
}

/** The decoded protected header; one that does not decode fails the whole JWE, as it is shared. */
function protectedHeaderOf(jwe: ParsedJwe): Record<string, unknown> {
  if (jwe.protected === undefined) return {}
  try {
    const header: unknown = JSON.parse(Buffer.from(jwe.protected, 'base64url').toString('utf8'))
    if (typeof header === 'object' && header !== null && !Array.isArray(header))
      return header as Record<string, unknown>
  } catch {
    // falls through to the fixed failure
  }
  throw decryptFailed()
}

/**
 * Pre-selects keys per recipient so no RSA key is tried on an ECDH-ES recipient (or an EC key on
 * another curve). jose would refuse those too; this only saves the work. A recipient without an
 * accepted `alg` gets no key and so is skipped.
 */
function fits(c: Candidate, header: Record<string, unknown>): boolean {
  const alg = header.alg
  if (typeof alg !== 'string' || !isKeyAlgorithm(alg)) return false
  if (alg.startsWith('RSA-')) return c.kind === 'rsa' && (c.bits ?? 0) >= MIN_RSA_BITS
  const epk = header.epk as { crv?: unknown } | undefined
  return c.kind === 'ec' && epk?.crv === c.curve
}

/**
 * The offered private keys jwe can use. Files that are no private key are skipped (pkcs7 shares
 * the list with certificates); a key that needs a password and has a wrong one or none is
 * ERR_CRYPT_KEY_INVALID, as ocicrypt refuses such a key before decrypting anything.
 */
async function candidatesFrom(dc: DecryptConfig): Promise<Candidate[]> {
  const out: Candidate[] = []
  for (const [i, bytes] of (dc.privkeys ?? []).entries()) {
    const key = await parsePrivateKey(bytes, dc.privkeysPasswords?.[i], `decryption key ${i + 1}`)
    const kind = key && keyKindOf(key)
    if (!key || !kind) continue
    out.push({ key, ...kind, bits: key.asymmetricKeyDetails?.modulusLength })
  }
  return out
}

function isKeyAlgorithm(alg: string): alg is KeyAlgorithm {
  return (KEY_ALGORITHMS as readonly string[]).includes(alg)
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
}
