import { createHash } from 'node:crypto'
import { CofferError } from '../util/errors.js'
import { emeDecrypt, emeEncrypt } from './eme.js'
import { pad16, unpad16 } from './pad16.js'
import { decodeRaw64, encodeRaw64 } from './raw64.js'

/**
 * File-name encryption of a gocryptfs v2 volume (internal/nametransform/names.go, longnames.go):
 * `Raw64(EME(K_name, tweak = parent dir IV, pad16(utf8 name)))`. An encoded name longer than
 * `longNameMax` (255) is stored as `gocryptfs.longname.<Raw64(SHA-256(encoded name))>`, with the
 * full encoded name in a sibling `<that>.name` file.
 */
export const DIRIV_NAME = 'gocryptfs.diriv'
export const CONF_NAME = 'gocryptfs.conf'
export const DIRIV_LEN = 16
export const LONGNAME_PREFIX = 'gocryptfs.longname.'
export const LONGNAME_SUFFIX = '.name'
/** gocryptfs reads at most this many bytes of a `.name` file (longnames.go). */
export const MAX_LONGNAME_FILE_BYTES = 344
export const NAME_MAX = 255

/** Throws ERR_STORAGE_NAME_INVALID for a name no POSIX directory entry can have. */
export function checkPlainName(name: string): Buffer {
  const bytes = Buffer.from(name, 'utf8')
  if (bytes.length === 0 || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
    throw new CofferError('ERR_STORAGE_NAME_INVALID', `invalid file name ${JSON.stringify(name)}`)
  if (bytes.length > NAME_MAX)
    throw new CofferError('ERR_STORAGE_NAME_TOO_LONG', `file name longer than ${NAME_MAX} bytes`)
  return bytes
}

export function isLongName(backingName: string): boolean {
  return backingName.startsWith(LONGNAME_PREFIX) && !backingName.endsWith(LONGNAME_SUFFIX)
}

export function isLongNameFile(backingName: string): boolean {
  return backingName.startsWith(LONGNAME_PREFIX) && backingName.endsWith(LONGNAME_SUFFIX)
}

/** A plaintext name's place in its backing directory. */
export interface CipherName {
  /** The encoded EME ciphertext (what `.name` holds for a long name). */
  readonly encoded: string
  /** The backing entry's name: `encoded`, or `gocryptfs.longname.<hash>` for a long name. */
  readonly backing: string
  readonly long: boolean
}

/** How many encrypted names NameCipher remembers (least recently used go first). */
const NAME_CACHE_MAX = 4096

export class NameCipher {
  /**
   * Encrypted names by directory IV and plaintext name. EME is deterministic, and the path API
   * re-encrypts every component of a request's path (a `tar -x` sends ~9 requests per file):
   * each EME is two AES-ECB passes through node:crypto. A directory made anew has a new IV, so
   * an entry never goes stale.
   */
  private readonly cache = new Map<string, CipherName>()

  constructor(
    private readonly key: Uint8Array,
    private readonly longNameMax = NAME_MAX,
  ) {}

  encrypt(name: string, dirIV: Uint8Array): CipherName {
    const cacheKey = Buffer.from(dirIV.buffer, dirIV.byteOffset, dirIV.length).toString('latin1') + name
    const hit = this.cache.get(cacheKey)
    if (hit) {
      this.cache.delete(cacheKey) // most recently used goes last
      this.cache.set(cacheKey, hit)
      return hit
    }
    const encoded = encodeRaw64(emeEncrypt(this.key, dirIV, pad16(checkPlainName(name))))
    const result: CipherName =
      encoded.length <= this.longNameMax
        ? { encoded, backing: encoded, long: false }
        : {
            encoded,
            backing: LONGNAME_PREFIX + encodeRaw64(createHash('sha256').update(encoded, 'ascii').digest()),
            long: true,
          }
    this.cache.set(cacheKey, result)
    if (this.cache.size > NAME_CACHE_MAX) this.cache.delete(this.cache.keys().next().value!)
    return result
  }

  /** Forgets every remembered name (the volume closes). */
  clear(): void {
    this.cache.clear()
  }

  /** Decrypts an encoded name; anything forged or corrupt is ERR_STORAGE_NAME_INVALID. */
  decrypt(encoded: string, dirIV: Uint8Array): string {
    const bin = decodeRaw64(encoded)
    if (bin.length === 0 || bin.length % 16 !== 0)
      throw new CofferError('ERR_STORAGE_NAME_INVALID', 'encrypted name has a bad length')
    const plain = unpad16(emeDecrypt(this.key, dirIV, bin))
    const name = plain.toString('utf8')
    // coffer's paths are strings: a name that is not UTF-8 (legal in gocryptfs) would come back
    // altered and could not be opened again, so it is refused with its own message.
    if (!Buffer.from(name, 'utf8').equals(plain))
      throw new CofferError('ERR_STORAGE_NAME_INVALID', 'file name is not valid UTF-8')
    checkPlainName(name)
    return name
  }

  /** Checks that `.name` content belongs to the long-name entry `backing` (its hash must match). */
  static longNameMatches(backing: string, encoded: string): boolean {
    const hash = encodeRaw64(createHash('sha256').update(encoded, 'ascii').digest())
    return backing === LONGNAME_PREFIX + hash
  }
}
