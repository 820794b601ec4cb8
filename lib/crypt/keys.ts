/**
 * Key material the way ocicrypt accepts it (spec §1.7; ocicrypt `utils/utils.go` ParsePublicKey and
 * ParsePrivateKey, `helpers/parse_helpers.go` processPwdString), turned into node KeyObjects. Key
 * wrappers get raw bytes in their Encrypt/DecryptConfig and call these; the CLI calls
 * `parseDecryptionKeyArg` for `--decryption-key` and `generateKeyPair` for `coffer keys generate`.
 *
 * Nothing here puts key bytes or passwords into messages or causes: errors name the `source` only.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair as generateNodeKeyPair,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto'
import { CofferError, isCofferError } from '../util/errors.js'
import { readOptionalFileLimited } from '../util/io.js'
import { MAX_KEY_PASSWORD_BYTES } from '../util/limits.js'

/** The asymmetric key types coffer's key wrappers use. */
export type KeyKind = 'rsa' | 'ec'
/** The EC curves ocicrypt (Go `crypto/ecdsa` + go-jose) accepts for ECDH-ES. */
export type EcCurve = 'P-256' | 'P-384' | 'P-521'

/** A recipient's public key, as parsed from PKIX PEM/DER or a public JWK. */
export interface PublicKeyInfo {
  kind: KeyKind
  key: KeyObject
  /** The curve of an EC key. */
  curve?: EcCurve
  /** Present when the input was a JWK; `alg` as the JWK states it (jwe honours it, spec §1.6). */
  jwk?: { alg?: string }
}

/** A `--decryption-key` argument, split (spec §1.7). */
export interface DecryptionKeyArg {
  path: string
  /** Absent when none was given or it was empty (ocicrypt: an empty password is no password). */
  password?: string
}

/** PEM text of a freshly generated key pair. */
export interface GeneratedKeyPair {
  /** PKCS#8 `PRIVATE KEY`, unencrypted: the caller writes it with mode 0600. */
  privatePem: string
  /** PKIX `PUBLIC KEY`, what `--encryption-key jwe:` takes. */
  publicPem: string
}

/** OpenSSL curve names (KeyObject.asymmetricKeyDetails.namedCurve) → JOSE names. */
const CURVE_BY_OPENSSL_NAME: Readonly<Record<string, EcCurve>> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
}

/** What `generateKeyPair` writes: PKIX public, unencrypted PKCS#8 private. */
const PEM_ENCODING = {
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
} as const

/** PEM labels that hold a private key. SEC1 `EC PRIVATE KEY` is beyond ocicrypt (see parsePrivateKey). */
const PRIVATE_KEY_LABELS = new Set([
  'PRIVATE KEY',
  'ENCRYPTED PRIVATE KEY',
  'RSA PRIVATE KEY',
  'EC PRIVATE KEY',
])

/**
 * The kind (and curve) of a key coffer can use, or undefined for any other key (Ed25519, X25519,
 * secp256k1, RSA-PSS-only, DSA, DH): ocicrypt's wrappers take only RSA and NIST-curve EC keys.
 */
export function keyKindOf(key: KeyObject): { kind: KeyKind; curve?: EcCurve } | undefined {
  if (key.asymmetricKeyType === 'rsa') return { kind: 'rsa' }
  if (key.asymmetricKeyType !== 'ec') return undefined
  const curve = CURVE_BY_OPENSSL_NAME[key.asymmetricKeyDetails?.namedCurve ?? '']
  return curve ? { kind: 'ec', curve } : undefined
}

/**
 * Parses a recipient public key: PEM or DER PKIX (`PUBLIC KEY`), or a public JWK; RSA, or EC on
 * P-256/384/521. Like ocicrypt, PKCS#1 `RSA PUBLIC KEY` is refused (ERR_CRYPT_KEY_INVALID, saying
 * how to convert it), as is a private JWK. Other key types are ERR_CRYPT_UNSUPPORTED. Of several PEM
 * blocks, the first `PUBLIC KEY` one is used. `source` names the input in messages (a file name).
 */
export async function parsePublicKey(bytes: Uint8Array, source: string): Promise<PublicKeyInfo> {
  const buf = toBuffer(bytes)
  if (looksLikeJson(buf)) return publicFromJwk(buf, source)
  const text = buf.toString('latin1')
  if (text.includes('-----BEGIN ')) return publicFromPem(text, source)
  let key: KeyObject
  try {
    key = createPublicKey({ key: buf, format: 'der', type: 'spki' })
  } catch {
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `${source} is not a public key (PEM or DER PKIX, or a JWK)`,
    )
  }
  return { ...usable(key, source), key }
}

/**
 * Parses a private key: PEM or DER PKCS#8 (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with a
 * password), PKCS#1 (`RSA PRIVATE KEY`, also legacy `Proc-Type: 4,ENCRYPTED` with a password), or a
 * private JWK. More lenient than ocicrypt, SEC1 `EC PRIVATE KEY` PEM is accepted too (ocicrypt
 * v1.0.3 skips it and then fails with "missing private key needed for decryption").
 *
 * Returns undefined for input that is no private key at all (an x509 certificate, a public key or
 * JWK, a GPG keyring): ocicrypt skips such `--decryption-key` files silently, and pkcs7 takes a
 * certificate through the same list. A private key that needs a password and has none, a wrong
 * password, or a damaged private key block is ERR_CRYPT_KEY_INVALID naming `source`, never the
 * password. An empty password counts as none. The key type is not checked: see `keyKindOf`.
 */
export async function parsePrivateKey(
  bytes: Uint8Array,
  password: Uint8Array | undefined,
  source: string,
): Promise<KeyObject | undefined> {
  const buf = toBuffer(bytes)
  const passphrase = password && password.byteLength > 0 ? toBuffer(password) : undefined
  if (looksLikeJson(buf)) return privateFromJwk(buf, source)
  const text = buf.toString('latin1')
  if (text.includes('-----BEGIN ')) return privateFromPem(text, passphrase, source)
  return privateFromDer(buf, passphrase, source)
}

/**
 * Splits a `--decryption-key` value with ocicrypt's syntax: `file`, `file:pass=<pw>`,
 * `file:file=<pwfile>` (read here, at most 64 bytes after one trailing newline is dropped), or
 * `file:<pw>`. As in ocicrypt the value is split on `:` and a password is taken only from exactly
 * two parts; where ocicrypt would silently drop the password of `a:b:c`, this refuses it
 * (use `file=<pwfile>` for a password with `:`). `file:fd=<n>` is not supported. Callers handle
 * `provider:` values before calling this. Errors are ERR_CRYPT_KEY_INVALID and never show the password.
 */
export async function parseDecryptionKeyArg(arg: string): Promise<DecryptionKeyArg> {
  if (arg.startsWith('provider:')) {
    // The provider's parameters may be secret: not echoed.
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      'a "provider:" decryption key names a key provider, not a key file',
    )
  }
  const parts = arg.split(':')
  const path = parts[0] ?? ''
  if (!path) throw new CofferError('ERR_CRYPT_KEY_INVALID', 'a decryption key needs a file name before ":"')
  if (parts.length === 1) return { path }
  if (parts.length > 2) {
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `decryption key ${path}: more than one ":" after the file name; put a password with ":" in a file (${path}:file=PWFILE)`,
    )
  }
  const spec = parts[1] ?? ''
  let password: string
  if (spec.startsWith('file=')) password = await readPasswordFile(spec.slice('file='.length))
  else if (spec.startsWith('pass=')) password = spec.slice('pass='.length)
  else if (spec.startsWith('fd=')) {
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `decryption key ${path}: a password from a file descriptor (fd=) is not supported; use file=PWFILE or pass=PASSWORD`,
    )
  } else password = spec
  return password ? { path, password } : { path }
}

/**
 * Generates a key pair for jwe: RSA (2048, 3072 or 4096 bits, default 3072, e = 65537) or EC
 * (P-256, P-384 or P-521, default P-256). Anything else is ERR_INVALID_ARGUMENT.
 */
export async function generateKeyPair(
  type: KeyKind,
  o: { bits?: number; curve?: EcCurve } = {},
): Promise<GeneratedKeyPair> {
  if (type === 'rsa') {
    const bits = o.bits ?? 3072
    if (![2048, 3072, 4096].includes(bits)) {
      throw new CofferError('ERR_INVALID_ARGUMENT', `RSA keys are 2048, 3072 or 4096 bits, not ${bits}`)
    }
    return new Promise((resolve, reject) => {
      const { publicKeyEncoding, privateKeyEncoding } = PEM_ENCODING
      const options = { modulusLength: bits, publicExponent: 0x10001, publicKeyEncoding, privateKeyEncoding }
      generateNodeKeyPair('rsa', options, (err: Error | null, publicPem: string, privatePem: string) =>
        err ? reject(err) : resolve({ privatePem, publicPem }),
      )
    })
  }
  if (type === 'ec') {
    const curve = o.curve ?? 'P-256'
    const namedCurve = Object.entries(CURVE_BY_OPENSSL_NAME).find(([, jose]) => jose === curve)?.[0]
    if (!namedCurve) {
      throw new CofferError(
        'ERR_INVALID_ARGUMENT',
        `EC curves are P-256, P-384 or P-521, not ${String(curve)}`,
      )
    }
    return new Promise((resolve, reject) => {
      const { publicKeyEncoding, privateKeyEncoding } = PEM_ENCODING
      generateNodeKeyPair(
        'ec',
        { namedCurve, publicKeyEncoding, privateKeyEncoding },
        (err, publicPem, privatePem) => (err ? reject(err) : resolve({ privatePem, publicPem })),
      )
    })
  }
  throw new CofferError('ERR_INVALID_ARGUMENT', `key type is rsa or ec, not ${String(type)}`)
}

// === public keys

function publicFromPem(text: string, source: string): PublicKeyInfo {
  const blocks = pemBlocks(text)
  const block = blocks.find((b) => b.label === 'PUBLIC KEY')
  if (!block) {
    const labels = new Set(blocks.map((b) => b.label))
    // Go's x509.ParsePKIXPublicKey refuses PKCS#1, so ocicrypt does (spec §1.7); say how to convert.
    if (labels.has('RSA PUBLIC KEY')) {
      throw new CofferError(
        'ERR_CRYPT_KEY_INVALID',
        `${source} is a PKCS#1 "RSA PUBLIC KEY"; convert it to PKIX: openssl rsa -RSAPublicKey_in -in ${source} -pubout`,
      )
    }
    if (labels.has('CERTIFICATE')) {
      throw new CofferError('ERR_CRYPT_KEY_INVALID', `${source} is an x509 certificate, not a public key`)
    }
    if ([...labels].some((l) => PRIVATE_KEY_LABELS.has(l))) {
      throw new CofferError(
        'ERR_CRYPT_KEY_INVALID',
        `${source} is a private key; give its public key (openssl pkey -in ${source} -pubout)`,
      )
    }
    throw new CofferError('ERR_CRYPT_KEY_INVALID', `${source} has no "PUBLIC KEY" PEM block`)
  }
  let key: KeyObject
  try {
    key = createPublicKey({ key: block.text, format: 'pem' })
  } catch {
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `${source}: the PUBLIC KEY PEM block is not a valid public key`,
    )
  }
  return { ...usable(key, source), key }
}

function publicFromJwk(buf: Buffer, source: string): PublicKeyInfo {
  const jwk = parseJsonObject(buf)
  if (!jwk || typeof jwk.kty !== 'string')
    throw new CofferError('ERR_CRYPT_KEY_INVALID', `${source} is not a JWK`)
  // go-jose's IsPublic() check in ocicrypt's parseJWKPublicKey: a private JWK is no recipient key.
  if ('d' in jwk) {
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `${source} is a private JWK; give the public key (without "d")`,
    )
  }
  if (jwk.alg !== undefined && typeof jwk.alg !== 'string') {
    throw new CofferError('ERR_CRYPT_KEY_INVALID', `${source}: the JWK "alg" is not a string`)
  }
  if (jwk.kty !== 'RSA' && jwk.kty !== 'EC') {
    throw new CofferError(
      'ERR_CRYPT_UNSUPPORTED',
      `${source}: JWK kty ${jwk.kty} is not supported; use RSA or EC`,
    )
  }
  let key: KeyObject
  try {
    key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
  } catch {
    throw new CofferError('ERR_CRYPT_KEY_INVALID', `${source} is not a valid ${jwk.kty} JWK`)
  }
  return { ...usable(key, source), key, jwk: jwk.alg === undefined ? {} : { alg: jwk.alg } }
}

function usable(key: KeyObject, source: string): { kind: KeyKind; curve?: EcCurve } {
  const kind = keyKindOf(key)
  if (kind) return kind
  const what = key.asymmetricKeyDetails?.namedCurve ?? key.asymmetricKeyType ?? 'unknown'
  throw new CofferError(
    'ERR_CRYPT_UNSUPPORTED',
    `${source}: ${what} keys are not supported; use RSA or EC P-256, P-384, P-521`,
  )
}

// === private keys

function privateFromPem(text: string, passphrase: Buffer | undefined, source: string): KeyObject | undefined {
  const block = pemBlocks(text).find((b) => PRIVATE_KEY_LABELS.has(b.label))
  if (!block) return undefined
  // PKCS#8 encryption shows in the label, legacy OpenSSL PEM encryption in RFC 1421 headers.
  const encrypted = block.label === 'ENCRYPTED PRIVATE KEY' || /^Proc-Type:\s*4,ENCRYPTED/m.test(block.text)
  if (encrypted && !passphrase) throw needsPassword(source)
  try {
    return createPrivateKey({ key: block.text, format: 'pem', ...(passphrase ? { passphrase } : {}) })
  } catch {
    // A wrong password usually fails the CBC padding check, but 1 in 256 passes it and fails in
    // the ASN.1 parser instead: for an encrypted block every failure counts as a wrong password.
    if (encrypted) throw wrongPassword(source)
    throw new CofferError(
      'ERR_CRYPT_KEY_INVALID',
      `${source}: the ${block.label} PEM block is not a valid private key`,
    )
  }
}

function privateFromDer(buf: Buffer, passphrase: Buffer | undefined, source: string): KeyObject | undefined {
  // Node tells an EncryptedPrivateKeyInfo apart by asking for its passphrase.
  let encrypted = false
  try {
    return createPrivateKey({ key: buf, format: 'der', type: 'pkcs8' })
  } catch (err) {
    encrypted = (err as { code?: unknown }).code === 'ERR_MISSING_PASSPHRASE'
  }
  if (encrypted) {
    if (!passphrase) throw needsPassword(source)
    try {
      return createPrivateKey({ key: buf, format: 'der', type: 'pkcs8', passphrase })
    } catch {
      throw wrongPassword(source)
    }
  }
  for (const type of ['pkcs1', 'sec1'] as const) {
    try {
      return createPrivateKey({ key: buf, format: 'der', type })
    } catch {
      // not this encoding; try the next, then give up quietly (ocicrypt skips unknown files)
    }
  }
  return undefined
}

function privateFromJwk(buf: Buffer, source: string): KeyObject | undefined {
  const jwk = parseJsonObject(buf)
  // Public and symmetric JWKs (and non-JWK JSON) are not private keys: skipped, as in ocicrypt.
  if (!jwk || typeof jwk.kty !== 'string' || jwk.d === undefined) return undefined
  try {
    return createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' })
  } catch {
    throw new CofferError('ERR_CRYPT_KEY_INVALID', `${source} is not a valid private JWK`)
  }
}

function needsPassword(source: string): CofferError {
  return new CofferError(
    'ERR_CRYPT_KEY_INVALID',
    `${source} is an encrypted private key; give its password (${source}:pass=PASSWORD or ${source}:file=PWFILE)`,
  )
}

/** Deliberately no `cause`: nothing from the failed decryption leaves this module. */
function wrongPassword(source: string): CofferError {
  return new CofferError('ERR_CRYPT_KEY_INVALID', `${source}: the password does not decrypt this private key`)
}

// === helpers

async function readPasswordFile(path: string): Promise<string> {
  if (!path) throw new CofferError('ERR_CRYPT_KEY_INVALID', 'file= needs a password file name')
  let raw: Buffer | undefined
  try {
    // Two bytes of slack for the "\r\n" dropped below.
    raw = await readOptionalFileLimited(
      path,
      MAX_KEY_PASSWORD_BYTES + 2,
      `password file ${path}`,
      'ERR_CRYPT_KEY_INVALID',
    )
  } catch (err) {
    if (isCofferError(err, 'ERR_TOO_LARGE')) throw tooLong(path)
    throw err
  }
  if (raw === undefined)
    throw new CofferError('ERR_CRYPT_KEY_INVALID', `password file ${path} does not exist`)
  let end = raw.length
  if (raw[end - 1] === 0x0a) end -= raw[end - 2] === 0x0d ? 2 : 1
  if (end > MAX_KEY_PASSWORD_BYTES) throw tooLong(path)
  return raw.subarray(0, end).toString('utf8')
}

function tooLong(path: string): CofferError {
  return new CofferError(
    'ERR_CRYPT_KEY_INVALID',
    `password file ${path} holds more than ${MAX_KEY_PASSWORD_BYTES} bytes`,
  )
}

interface PemBlock {
  label: string
  /** The whole block, BEGIN to END line, headers included: what node's PEM parser takes. */
  text: string
}

function pemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = []
  for (const m of text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g)) {
    blocks.push({ label: m[1] ?? '', text: m[0] })
  }
  return blocks
}

function looksLikeJson(buf: Buffer): boolean {
  for (const byte of buf) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) continue
    return byte === 0x7b // '{'
  }
  return false
}

function parseJsonObject(buf: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(buf.toString('utf8'))
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
