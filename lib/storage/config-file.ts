import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { writeFileAtomic } from '../util/atomic-file.js'
import { CofferError } from '../util/errors.js'
import { MAX_GOCRYPTFS_CONF_BYTES, MAX_SCRYPT_MEMORY_BYTES } from '../util/limits.js'
import { HKDF_INFO_CONTENT, hkdf32 } from './key-derivation.js'
import { CONF_NAME, NAME_MAX } from './names.js'

/**
 * `gocryptfs.conf` (internal/configfile): JSON with the scrypt-wrapped master key and the feature
 * flags. coffer writes exactly what `gocryptfs -init` 2.3 writes by default and opens volumes that use
 * the same algorithms (AES-256-GCM contents, EME names); other modes are refused by name.
 */
export const CONF_VERSION = 2
export const MASTER_KEY_LEN = 32
export const DEFAULT_SCRYPT_LOG_N = 16

/** What `gocryptfs -init` 2.3 writes, in its order. */
export const DEFAULT_FEATURE_FLAGS = ['HKDF', 'GCMIV128', 'DirIV', 'EMENames', 'LongNames', 'Raw64'] as const

/** Flags coffer implements. Without DirIV names use an all-zero IV (gocryptfs -deterministic-names). */
const SUPPORTED_FLAGS = new Set([
  'HKDF',
  'GCMIV128',
  'DirIV',
  'EMENames',
  'LongNames',
  'Raw64',
  'LongNameMax',
])
/** Flags gocryptfs knows that coffer does not implement (other ciphers, FIDO2 keys, clear names). */
const UNSUPPORTED_FLAGS = new Set(['AESSIV', 'XChaCha20Poly1305', 'PlaintextNames', 'FIDO2'])
/** Without these the volume predates gocryptfs v1.3 or uses a mode coffer does not speak. */
const REQUIRED_FLAGS = ['HKDF', 'GCMIV128', 'EMENames', 'LongNames', 'Raw64']

// Load-time minimums are gocryptfs's (configfile/scrypt.go validateParams): weaker params are refused.
const ScryptObject = z.object({
  Salt: z.base64(),
  N: z.number().int().min(1024),
  R: z.number().int().min(8),
  P: z.number().int().min(1),
  KeyLen: z.number().int().min(32).max(64),
})

// Unknown keys are dropped, as Go's encoding/json ignores them.
const ConfSchema = z.object({
  Creator: z.string().max(1024),
  EncryptedKey: z.base64(),
  ScryptObject,
  Version: z.number().int(),
  FeatureFlags: z.array(z.string().max(64)).max(64),
  LongNameMax: z.number().int().optional(),
  FIDO2: z.unknown().optional(),
})

export type ScryptParams = z.infer<typeof ScryptObject>

/** The parsed, validated `gocryptfs.conf`. */
export interface VolumeConfig {
  readonly creator: string
  readonly encryptedKey: Buffer
  readonly scrypt: ScryptParams
  readonly version: number
  readonly featureFlags: readonly string[]
  /** Longest encoded name stored as is (255 unless the LongNameMax flag is set). */
  readonly longNameMax: number
  readonly dirIV: boolean
}

function invalid(message: string): CofferError {
  return new CofferError('ERR_STORAGE_CONFIG_INVALID', `gocryptfs.conf: ${message}`)
}

/** Parses and checks a conf document (no passphrase needed). */
export function parseConfig(text: string): VolumeConfig {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (cause) {
    throw new CofferError('ERR_STORAGE_CONFIG_INVALID', 'gocryptfs.conf: not JSON', { cause })
  }
  const parsed = ConfSchema.safeParse(json)
  if (!parsed.success)
    throw invalid(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '))
  const c = parsed.data
  if (c.Version !== CONF_VERSION)
    throw invalid(`on-disk format version ${c.Version}, coffer reads ${CONF_VERSION}`)
  const flags = c.FeatureFlags
  const unknown = flags.filter((f) => !SUPPORTED_FLAGS.has(f) && !UNSUPPORTED_FLAGS.has(f))
  if (unknown.length) throw invalid(`unknown feature flag(s): ${unknown.join(', ')}`)
  const unsupported = flags.filter((f) => UNSUPPORTED_FLAGS.has(f))
  if (unsupported.length)
    throw new CofferError(
      'ERR_STORAGE_FEATURE_UNSUPPORTED',
      `gocryptfs.conf: feature flag(s) not supported by coffer: ${unsupported.join(', ')}`,
    )
  const missing = REQUIRED_FLAGS.filter((f) => !flags.includes(f))
  if (missing.length)
    throw new CofferError(
      'ERR_STORAGE_FEATURE_UNSUPPORTED',
      `gocryptfs.conf: volume lacks feature flag(s) coffer needs: ${missing.join(', ')} (created by gocryptfs < 1.3?)`,
    )
  let longNameMax = NAME_MAX
  if (flags.includes('LongNameMax')) {
    if (c.LongNameMax === undefined || c.LongNameMax < 62 || c.LongNameMax > 254)
      throw invalid('LongNameMax must be 62..254 when its flag is set')
    longNameMax = c.LongNameMax
  } else if (c.LongNameMax !== undefined) throw invalid('LongNameMax is set without its feature flag')
  const encryptedKey = Buffer.from(c.EncryptedKey, 'base64')
  if (encryptedKey.length !== 16 + MASTER_KEY_LEN + 16) throw invalid('EncryptedKey must be 64 bytes')
  const salt = Buffer.from(c.ScryptObject.Salt, 'base64')
  if (salt.length < 32) throw invalid('scrypt salt shorter than 32 bytes')
  const { N, R, P } = c.ScryptObject
  if ((N & (N - 1)) !== 0) throw invalid('scrypt N must be a power of two')
  if (scryptMemory(c.ScryptObject) > MAX_SCRYPT_MEMORY_BYTES)
    throw new CofferError(
      'ERR_TOO_LARGE',
      `gocryptfs.conf: scrypt N=${N} R=${R} P=${P} needs too much memory`,
    )
  return {
    creator: c.Creator,
    encryptedKey,
    scrypt: c.ScryptObject,
    version: c.Version,
    featureFlags: flags,
    longNameMax,
    dirIV: flags.includes('DirIV'),
  }
}

/** Reads `BACKING/gocryptfs.conf`; a missing file is ERR_STORAGE_NOT_A_VOLUME. */
export async function readConfig(backingDir: string): Promise<VolumeConfig> {
  let fh
  try {
    fh = await open(join(backingDir, CONF_NAME), 'r')
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new CofferError('ERR_STORAGE_NOT_A_VOLUME', `${backingDir} has no gocryptfs.conf`, { cause })
    throw cause
  }
  try {
    const { size } = await fh.stat()
    if (size > MAX_GOCRYPTFS_CONF_BYTES) throw new CofferError('ERR_TOO_LARGE', 'gocryptfs.conf is too large')
    return parseConfig(await fh.readFile('utf8'))
  } finally {
    await fh.close()
  }
}

function scryptMemory(p: { N: number; R: number; P: number }): number {
  return 128 * p.N * p.R * p.P
}

function scrypt(passphrase: Uint8Array, p: ScryptParams): Promise<Buffer> {
  if (passphrase.length === 0)
    throw new CofferError('ERR_STORAGE_PASSPHRASE_EMPTY', 'the passphrase is empty')
  const salt = Buffer.from(p.Salt, 'base64')
  return new Promise((resolve, reject) =>
    scryptCb(
      passphrase,
      salt,
      p.KeyLen,
      // Node's default maxmem (32 MiB) is below gocryptfs's default N=2^16, r=8 (64 MiB).
      { N: p.N, r: p.R, p: p.P, maxmem: scryptMemory(p) + 16 * 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)),
    ),
  )
}

// The wrap is one content block: 16-byte nonce, AD = block number 0 (8 zero bytes), no file ID.
const WRAP_AD = Buffer.alloc(8)

/** Unwraps the master key; a wrong passphrase is ERR_STORAGE_WRONG_PASSPHRASE. */
export async function unwrapMasterKey(conf: VolumeConfig, passphrase: Uint8Array): Promise<Buffer> {
  const kek = hkdf32(await scrypt(passphrase, conf.scrypt), HKDF_INFO_CONTENT)
  const ek = conf.encryptedKey
  try {
    const d = createDecipheriv('aes-256-gcm', kek, ek.subarray(0, 16))
    d.setAAD(WRAP_AD)
    d.setAuthTag(ek.subarray(ek.length - 16))
    return Buffer.concat([d.update(ek.subarray(16, ek.length - 16)), d.final()])
  } catch {
    throw new CofferError(
      'ERR_STORAGE_WRONG_PASSPHRASE',
      'wrong passphrase for this volume (or a corrupt gocryptfs.conf)',
    )
  } finally {
    kek.fill(0)
  }
}

/** Wraps `masterKey` under `passphrase` with fresh scrypt salt and nonce. */
export async function wrapMasterKey(
  masterKey: Uint8Array,
  passphrase: Uint8Array,
  logN = DEFAULT_SCRYPT_LOG_N,
): Promise<{ encryptedKey: Buffer; scrypt: ScryptParams }> {
  if (!Number.isInteger(logN) || logN < 10 || logN > 28)
    throw new CofferError('ERR_INVALID_ARGUMENT', 'scrypt log2(N) must be 10..28')
  const params: ScryptParams = {
    Salt: randomBytes(32).toString('base64'),
    N: 2 ** logN,
    R: 8,
    P: 1,
    KeyLen: 32,
  }
  if (scryptMemory(params) > MAX_SCRYPT_MEMORY_BYTES)
    throw new CofferError('ERR_INVALID_ARGUMENT', `scrypt log2(N)=${logN} needs too much memory`)
  const kek = hkdf32(await scrypt(passphrase, params), HKDF_INFO_CONTENT)
  const nonce = randomBytes(16)
  const c = createCipheriv('aes-256-gcm', kek, nonce)
  c.setAAD(WRAP_AD)
  const body = Buffer.concat([c.update(masterKey), c.final()])
  kek.fill(0)
  return { encryptedKey: Buffer.concat([nonce, body, c.getAuthTag()]), scrypt: params }
}

/** The conf document, byte for byte as Go's json.MarshalIndent(…, "", "\t") lays it out. */
export function serializeConfig(c: {
  creator: string
  encryptedKey: Uint8Array
  scrypt: ScryptParams
  featureFlags: readonly string[]
  longNameMax?: number
}): string {
  const doc: Record<string, unknown> = {
    Creator: c.creator,
    EncryptedKey: Buffer.from(c.encryptedKey).toString('base64'),
    ScryptObject: {
      Salt: c.scrypt.Salt,
      N: c.scrypt.N,
      R: c.scrypt.R,
      P: c.scrypt.P,
      KeyLen: c.scrypt.KeyLen,
    },
    Version: CONF_VERSION,
    FeatureFlags: c.featureFlags,
  }
  if (c.longNameMax !== undefined && c.featureFlags.includes('LongNameMax')) doc.LongNameMax = c.longNameMax
  return `${JSON.stringify(doc, null, '\t')}\n`
}

/** Writes the conf atomically with gocryptfs's mode 0400. */
export async function writeConfig(backingDir: string, document: string): Promise<void> {
  await writeFileAtomic(join(backingDir, CONF_NAME), document, 0o400)
}
