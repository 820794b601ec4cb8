import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { CofferError } from '../util/errors.js'
import { nativeGcm } from './native-gcm.js'
import { takeRandom } from './nonce-pool.js'

/**
 * gocryptfs v2 file contents (internal/contentenc, Documentation/file-format.md):
 * an 18-byte header (u16 BE version 2 ‖ 16-byte random file ID), then 4096-byte plaintext blocks,
 * each stored as nonce16 ‖ AES-256-GCM ciphertext ‖ tag16. The additional data binds a block to
 * its place: u64 BE block number ‖ file ID, so blocks cannot be moved within or between files.
 * An empty plaintext file is an empty backing file (no header).
 */
export const HEADER_LEN = 18
export const HEADER_VERSION = 2
export const FILE_ID_LEN = 16
export const NONCE_LEN = 16
export const TAG_LEN = 16
export const BLOCK_OVERHEAD = NONCE_LEN + TAG_LEN
export const PLAIN_BS = 4096
export const CIPHER_BS = PLAIN_BS + BLOCK_OVERHEAD

/** The fixed message of every failed block (style rule 6: crypto failures look alike). */
export const CORRUPT_BLOCK = 'corrupt block: authentication failed'

export function newFileHeader(): { bytes: Buffer; fileId: Buffer } {
  const fileId = randomBytes(FILE_ID_LEN)
  const bytes = Buffer.alloc(HEADER_LEN)
  bytes.writeUInt16BE(HEADER_VERSION, 0)
  fileId.copy(bytes, 2)
  return { bytes, fileId }
}

/** Parses a header; gocryptfs rejects another version and an all-zero file ID. */
export function parseFileHeader(bytes: Uint8Array): Buffer {
  if (bytes.length !== HEADER_LEN) throw new CofferError('ERR_STORAGE_CORRUPT', 'truncated file header')
  const buf = Buffer.from(bytes)
  if (buf.readUInt16BE(0) !== HEADER_VERSION)
    throw new CofferError('ERR_STORAGE_CORRUPT', 'unsupported file header version')
  const fileId = buf.subarray(2)
  if (fileId.every((b) => b === 0)) throw new CofferError('ERR_STORAGE_CORRUPT', 'all-zero file ID')
  return Buffer.from(fileId)
}

/**
 * One scratch buffer for the additional data: setAAD consumes it at once, and a fresh buffer (and
 * a BigInt) per 4 KiB block was a visible share of a request's time.
 */
const adScratch = Buffer.alloc(8 + FILE_ID_LEN)

function additionalData(blockNo: number, fileId: Uint8Array | undefined): Buffer {
  adScratch.writeUInt32BE(Math.floor(blockNo / 2 ** 32), 0)
  adScratch.writeUInt32BE(blockNo >>> 0, 4)
  if (!fileId) return adScratch.subarray(0, 8)
  adScratch.set(fileId, 8)
  return adScratch.subarray(0, 8 + fileId.length)
}

/** Encrypts one block (≤ 4096 bytes) with a fresh random nonce. Empty in, empty out. */
export function encryptBlock(
  key: Uint8Array,
  plain: Uint8Array,
  blockNo: number,
  fileId: Uint8Array | undefined,
): Buffer {
  if (plain.length === 0) return Buffer.alloc(0)
  return encryptBlocks(key, plain, blockNo, fileId)
}

/**
 * Encrypts consecutive blocks (`plain` split every 4096 bytes, the last one may be short) numbered
 * from `firstBlockNo`, into one buffer laid out as on disk. The nonces come from one batched random
 * source: fetching 16 random bytes per block cost as much as the AES-GCM itself. The native addon
 * does the AES-GCM when it is built (native-gcm.ts), node:crypto otherwise.
 */
export function encryptBlocks(
  key: Uint8Array,
  plain: Uint8Array,
  firstBlockNo: number,
  fileId: Uint8Array | undefined,
  into?: Buffer,
): Buffer {
  const n = Math.ceil(plain.length / PLAIN_BS)
  const out = outputBuffer(plain.length + n * BLOCK_OVERHEAD, into)
  const nonces = takeRandom(n * NONCE_LEN)
  if (nativeGcm) nativeGcm.seal(key, plain, firstBlockNo, fileId ?? null, nonces, out)
  else sealBlocksJs(key, plain, firstBlockNo, fileId, nonces, out)
  return out
}

/** encryptBlocks' AES-GCM with node:crypto, one cipher object per block (the addon's reference). */
export function sealBlocksJs(
  key: Uint8Array,
  plain: Uint8Array,
  firstBlockNo: number,
  fileId: Uint8Array | undefined,
  nonces: Buffer,
  out: Buffer,
): void {
  const n = Math.ceil(plain.length / PLAIN_BS)
  for (let i = 0; i < n; i++) {
    const p = plain.subarray(i * PLAIN_BS, Math.min(plain.length, (i + 1) * PLAIN_BS))
    const at = i * CIPHER_BS
    const nonce = nonces.subarray(i * NONCE_LEN, (i + 1) * NONCE_LEN)
    // Buffer#copy is a memcpy; TypedArray#set copies byte by byte into shared memory (workers).
    nonce.copy(out, at)
    const c = createCipheriv('aes-256-gcm', key, nonce)
    c.setAAD(additionalData(firstBlockNo + i, fileId))
    c.update(p).copy(out, at + NONCE_LEN)
    c.final() // GCM is a stream mode: final() only computes the tag, it returns no bytes
    c.getAuthTag().copy(out, at + NONCE_LEN + p.length)
  }
}

/**
 * Decrypts one stored block. A full-size all-zero block is a file hole and reads as 4096 zero
 * bytes (gocryptfs's sparse-file rule). Anything that fails authentication is ERR_STORAGE_CORRUPT,
 * which the FUSE layer maps to EIO: never wrong data.
 */
export function decryptBlock(
  key: Uint8Array,
  stored: Uint8Array,
  blockNo: number,
  fileId: Uint8Array | undefined,
): Buffer {
  if (stored.length === 0) return Buffer.alloc(0)
  // More than one block's worth is no block at all (decryptBlocks would read it as two).
  if (stored.length > CIPHER_BS) throw new CofferError('ERR_STORAGE_CORRUPT', CORRUPT_BLOCK)
  return decryptBlocks(key, stored, blockNo, fileId)
}

/**
 * Decrypts consecutive stored blocks (as laid out on disk, the last one may be short) numbered from
 * `firstBlockNo` into one plaintext buffer. Any block that fails authentication fails the whole
 * call with ERR_STORAGE_CORRUPT. The native addon does the work when it is built.
 */
export function decryptBlocks(
  key: Uint8Array,
  stored: Uint8Array,
  firstBlockNo: number,
  fileId: Uint8Array | undefined,
  into?: Buffer,
): Buffer {
  const out = outputBuffer(plainLength(stored.length), into)
  if (!nativeGcm) return openBlocksJs(key, stored, firstBlockNo, fileId, out)
  if (nativeGcm.open(key, stored, firstBlockNo, fileId ?? null, out) >= 0)
    throw new CofferError('ERR_STORAGE_CORRUPT', CORRUPT_BLOCK)
  return out
}

/** decryptBlocks with node:crypto, one cipher object per block (the addon's reference). */
export function openBlocksJs(
  key: Uint8Array,
  stored: Uint8Array,
  firstBlockNo: number,
  fileId: Uint8Array | undefined,
  out: Buffer,
): Buffer {
  const n = Math.ceil(stored.length / CIPHER_BS)
  for (let i = 0; i < n; i++) {
    const block = stored.subarray(i * CIPHER_BS, Math.min(stored.length, (i + 1) * CIPHER_BS))
    decryptBlockInto(key, block, firstBlockNo + i, fileId, out, i * PLAIN_BS)
  }
  return out
}

/** Plaintext length of consecutive stored blocks (a too-short last block counts as 0). */
export function plainLength(storedLength: number): number {
  const n = Math.ceil(storedLength / CIPHER_BS)
  if (n === 0) return 0
  return (n - 1) * PLAIN_BS + Math.max(0, storedLength - (n - 1) * CIPHER_BS - BLOCK_OVERHEAD)
}

/** `into`'s first `length` bytes (the caller's buffer, e.g. shared memory), or a new buffer. */
function outputBuffer(length: number, into: Buffer | undefined): Buffer {
  if (!into) return Buffer.allocUnsafe(length)
  if (into.length < length) throw new CofferError('ERR_INTERNAL', 'block output buffer too small')
  return into.subarray(0, length)
}

/** Decrypts one non-empty stored block into `out` at `at` (see decryptBlock). */
function decryptBlockInto(
  key: Uint8Array,
  stored: Uint8Array,
  blockNo: number,
  fileId: Uint8Array | undefined,
  out: Buffer,
  at: number,
): void {
  if (stored.length <= BLOCK_OVERHEAD || stored.length > CIPHER_BS)
    throw new CofferError('ERR_STORAGE_CORRUPT', CORRUPT_BLOCK)
  if (stored.length === CIPHER_BS && isAllZero(stored)) {
    out.fill(0, at, at + PLAIN_BS)
    return
  }
  const nonce = stored.subarray(0, NONCE_LEN)
  // An all-zero nonce never comes from encryptBlock; gocryptfs refuses it too.
  if (isAllZero(nonce)) throw new CofferError('ERR_STORAGE_CORRUPT', CORRUPT_BLOCK)
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce)
    d.setAAD(additionalData(blockNo, fileId))
    d.setAuthTag(stored.subarray(stored.length - TAG_LEN))
    d.update(stored.subarray(NONCE_LEN, stored.length - TAG_LEN)).copy(out, at)
    d.final()
  } catch {
    throw new CofferError('ERR_STORAGE_CORRUPT', CORRUPT_BLOCK)
  }
}

const ZERO_BLOCK = Buffer.alloc(CIPHER_BS)

/** A native compare: a per-byte JS loop over every 4 KiB block was a visible part of a read. */
function isAllZero(b: Uint8Array): boolean {
  return ZERO_BLOCK.subarray(0, b.length).equals(b)
}

/** Backing-file size of a plaintext size (offsets.go PlainSizeToCipherSize). */
export function cipherSize(plainSize: number): number {
  if (plainSize === 0) return 0
  const full = Math.floor(plainSize / PLAIN_BS)
  const rest = plainSize % PLAIN_BS
  return HEADER_LEN + full * CIPHER_BS + (rest ? rest + BLOCK_OVERHEAD : 0)
}

/**
 * Plaintext size of a backing-file size (offsets.go CipherSizeToPlainSize). A header-only file is
 * empty; a trailing fragment too short to hold a block counts as 1 byte, as in gocryptfs, so the
 * size is stable and reading that byte fails authentication.
 */
export function plainSize(cipherBytes: number): number {
  if (cipherBytes <= HEADER_LEN) return 0
  const body = cipherBytes - HEADER_LEN
  const full = Math.floor(body / CIPHER_BS)
  const rest = body % CIPHER_BS
  if (rest === 0) return full * PLAIN_BS
  return full * PLAIN_BS + (rest > BLOCK_OVERHEAD ? rest - BLOCK_OVERHEAD : 1)
}

/** Offset of block `n` in the backing file. */
export function blockCipherOffset(n: number): number {
  return HEADER_LEN + n * CIPHER_BS
}
