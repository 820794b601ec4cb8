import { fstatSync, ftruncateSync, readSync, writeSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { CofferError } from '../util/errors.js'
import type { BlockCrypto } from './block-crypto.js'
import { MIN_SPLIT_BLOCKS } from './block-crypto-workers.js'
import { BufferPool } from './buffer-pool.js'
import {
  CIPHER_BS,
  HEADER_LEN,
  PLAIN_BS,
  blockCipherOffset,
  cipherSize,
  newFileHeader,
  parseFileHeader,
  plainLength,
  plainSize,
} from './content-cipher.js'
import type { InodeCache, InodeState } from './inode-cache.js'

/**
 * Backing-file I/O is synchronous (readSync/writeSync on the handle's fd) on purpose. The backing
 * directory is never the FUSE mount, so this cannot deadlock, and on the page cache a sync call
 * takes microseconds while a thread-pool round trip plus promise scheduling took most of each FUSE
 * request: with async I/O random 4 KiB IOPS were 2-5× lower (bench/fs.ts). The price is that a
 * read that misses the page cache holds up the other requests for that long.
 *
 * An open plaintext file: random-offset reads and writes, truncate and extend over one backing
 * file, with gocryptfs's block rules (internal/fusefrontend/file.go, file_holes.go,
 * file_allocate_truncate.go). Reads, writes and truncates run synchronously from start to end
 * (the AES-GCM too, block-crypto.ts), so two of them on one inode, through several handles or hard
 * links, never interleave: that is the inode lock, without the promise hops a queue of them cost
 * on every FUSE request.
 */
/** Stored blocks of one request in flight (128 KiB FUSE requests), shared by all open files. */
const cipherBuffers = new BufferPool(32 * CIPHER_BS, 8)

export interface VolumeFile {
  /** Reads up to `length` bytes at `position`; short only at end of file. */
  read(position: number, length: number): Promise<Buffer>
  /** Reads up to `into.length` bytes at `position` into `into`; the count, short only at EOF. */
  readInto(position: number, into: Buffer): Promise<number>
  /** readInto, done before it returns (the FUSE server answers the kernel from its callback). */
  readIntoSync(position: number, into: Buffer): number
  /**
   * Writes all of `data` at `position` (past the end leaves a hole); returns data.length. `data` is
   * not copied: it must stay unchanged until the promise settles.
   */
  write(position: number, data: Uint8Array): Promise<number>
  /** write, done before it returns; `data` is not used afterwards. */
  writeSync(position: number, data: Uint8Array): number
  truncate(size: number): Promise<void>
  /**
   * Reports, once, a failed write-behind through this handle (`flush` of FUSE, i.e. close(2),
   * returns it; so do the next write, sync and close).
   */
  flush(): Promise<void>
  /** Plaintext size. */
  size(): Promise<number>
  /** The backing file's descriptor (open until `close`), for a reader that follows the same rules. */
  readonly backingFd: number
  sync(): Promise<void>
  close(): Promise<void>
}

export class OpenFile implements VolumeFile {
  private readonly state: InodeState
  private closed = false
  /** A write-behind of this handle that failed, not reported yet. */
  private deferred: Error | undefined

  constructor(
    private readonly fh: FileHandle,
    private readonly crypto: BlockCrypto,
    private readonly inode: string,
    private readonly cache: InodeCache,
  ) {
    this.state = cache.acquire(inode)
  }

  get backingFd(): number {
    return this.fh.fd
  }

  async read(position: number, length: number): Promise<Buffer> {
    checkRange(position, length)
    this.crypto.settle()
    const r = this.readStoredRange(position, length)
    if (!r) return Buffer.alloc(0)
    try {
      return this.crypto.decryptSync(r.stored, r.first, r.fileId).subarray(r.from, r.to)
    } finally {
      cipherBuffers.give(r.stored)
    }
  }

  async readInto(position: number, into: Buffer): Promise<number> {
    return this.readIntoSync(position, into)
  }

  readIntoSync(position: number, into: Buffer): number {
    checkRange(position, into.length)
    this.crypto.settle()
    const r = this.readStoredRange(position, into.length)
    if (!r) return 0
    try {
      // Block-aligned (the kernel's page-cache reads are): the plaintext goes straight to `into`.
      if (r.from === 0 && plainLength(r.stored.length) <= into.length) {
        this.crypto.decryptSync(r.stored, r.first, r.fileId, into)
        return r.to
      }
      const all = this.crypto.decryptSync(r.stored, r.first, r.fileId)
      return all.copy(into, 0, r.from, r.to)
    } finally {
      cipherBuffers.give(r.stored)
    }
  }

  async write(position: number, data: Uint8Array): Promise<number> {
    return this.writeSync(position, data)
  }

  writeSync(position: number, data: Uint8Array): number {
    checkRange(position, data.length)
    this.settle()
    this.writeAt(position, asBuffer(data))
    return data.length
  }

  async truncate(size: number): Promise<void> {
    checkRange(size, 0)
    this.crypto.settle()
    this.truncateTo(size)
  }

  async flush(): Promise<void> {
    this.settle()
  }

  async size(): Promise<number> {
    this.crypto.settle()
    return plainSize(this.cipherBytes())
  }

  async sync(): Promise<void> {
    this.settle()
    await this.fh.sync()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    try {
      this.settle() // the write-behind in flight may still use the descriptor
    } finally {
      this.cache.release(this.inode)
      await this.fh.close()
    }
  }

  /** Waits for the write-behind in flight and throws this handle's failed one, once. */
  private settle(): void {
    this.crypto.settle()
    const err = this.deferred
    this.deferred = undefined
    if (err) throw err
  }

  // === internals (synchronous from start to end, which is what keeps this.state current)

  private cipherBytes(): number {
    this.state.cipherBytes ??= fstatSync(this.fh.fd).size
    return this.state.cipherBytes
  }

  private fileId(): Buffer {
    if (this.state.fileId) return this.state.fileId
    const header = Buffer.alloc(HEADER_LEN)
    const bytesRead = readSync(this.fh.fd, header, 0, HEADER_LEN, 0)
    const id = parseFileHeader(header.subarray(0, bytesRead))
    this.state.fileId = id
    return id
  }

  /** Writes at a backing offset and records the new backing size. */
  private writeCipher(data: Buffer, position: number): void {
    const before = this.cipherBytes()
    try {
      writeAll(this.fh.fd, data, position)
    } catch (err) {
      this.state.cipherBytes = undefined // a short write may have grown the file: fstat again
      throw err
    }
    this.state.cipherBytes = Math.max(before, position + data.length)
  }

  private truncateCipher(bytes: number): void {
    this.state.cipherBytes = undefined
    ftruncateSync(this.fh.fd, bytes)
    this.state.cipherBytes = bytes
    if (bytes === 0) this.state.fileId = undefined
  }

  /** Reads the stored bytes of blocks [first, last]; short at end of file. From cipherBuffers. */
  private readStored(first: number, last: number): Buffer {
    const buf = cipherBuffers.take((last - first + 1) * CIPHER_BS) // only the bytes read are used
    const bytesRead = readSync(this.fh.fd, buf, 0, buf.length, blockCipherOffset(first))
    return buf.subarray(0, bytesRead)
  }

  /** The stored blocks covering [position, position + length) and where the range lies in them. */
  private readStoredRange(
    position: number,
    length: number,
  ): { stored: Buffer; first: number; fileId: Buffer; from: number; to: number } | undefined {
    const size = plainSize(this.cipherBytes())
    const end = Math.min(position + length, size)
    if (length === 0 || position >= end) return undefined
    const fileId = this.fileId()
    const first = Math.floor(position / PLAIN_BS)
    const last = Math.floor((end - 1) / PLAIN_BS)
    const stored = this.readStored(first, last)
    return { stored, first, fileId, from: position - first * PLAIN_BS, to: end - first * PLAIN_BS }
  }

  /** The plaintext of block `n` as stored now (empty past the end of file). */
  private readBlock(n: number, fileId: Buffer): Buffer {
    const stored = this.readStored(n, n)
    try {
      return this.crypto.decryptSync(stored, n, fileId)
    } finally {
      cipherBuffers.give(stored)
    }
  }

  /** The file ID, creating the header if the backing file is empty (gocryptfs createHeader). */
  private ensureHeader(): Buffer {
    const bytes = this.cipherBytes()
    if (bytes > 0) return this.fileId()
    const header = newFileHeader()
    this.writeCipher(header.bytes, 0)
    this.state.fileId = header.fileId
    return header.fileId
  }

  private writeAt(position: number, data: Buffer): void {
    if (data.length === 0) return
    const fileId = this.ensureHeader()
    const size = plainSize(this.cipherBytes())
    // === a write that starts beyond the block after EOF: pad the old last block to 4096 bytes,
    // so the blocks in between become holes (file_holes.go writePadHole).
    if (position > size && Math.floor(position / PLAIN_BS) > Math.floor(size / PLAIN_BS))
      this.zeroPad(size, fileId)
    this.writeBlocks(position, data, fileId)
  }

  /** Pads a partial last block with zeros up to the block boundary. */
  private zeroPad(size: number, fileId: Buffer): void {
    const rest = size % PLAIN_BS
    if (rest === 0) return
    this.writeBlocks(size, Buffer.alloc(PLAIN_BS - rest), fileId)
  }

  /**
   * Read-modify-write of every block `data` touches, then one write of the new ciphertext. Only
   * the first and last block can be partial; the blocks in between are encrypted from `data`.
   */
  private writeBlocks(position: number, data: Buffer, fileId: Buffer): void {
    const first = Math.floor(position / PLAIN_BS)
    const last = Math.floor((position + data.length - 1) / PLAIN_BS)
    const regionStart = first * PLAIN_BS
    let plain: Buffer = data
    const head = position - regionStart
    const lastBlockEnd = (last + 1) * PLAIN_BS
    const needsTail = (position + data.length) % PLAIN_BS !== 0
    if (head !== 0 || needsTail) {
      // A block that fails authentication is not silently overwritten: the error surfaces and the
      // write fails (gocryptfs does the same).
      const oldFirst = head !== 0 ? this.readBlock(first, fileId) : Buffer.alloc(0)
      const oldLast =
        needsTail && (last !== first || head === 0)
          ? this.readBlock(last, fileId)
          : last === first
            ? oldFirst
            : Buffer.alloc(0)
      // The region ends where the new data ends, or where the old last block ended if later.
      const oldLastEnd = last * PLAIN_BS + oldLast.length
      const end = Math.min(lastBlockEnd, Math.max(position + data.length, oldLastEnd))
      plain = Buffer.alloc(end - regionStart)
      oldFirst.copy(plain, 0)
      oldLast.copy(plain, last * PLAIN_BS - regionStart) // the same block again if first === last
      data.copy(plain, head)
    }
    // Whole blocks of a big write (sequential writes are): a worker encrypts and writes them while
    // the kernel sends the next request. The size is recorded now; a failure is reported later.
    if (plain === data && data.length >= MIN_SPLIT_BLOCKS * PLAIN_BS && this.writeBehind(first, data, fileId))
      return
    const stored = cipherBuffers.take(cipherSize(plain.length) - HEADER_LEN) // plain is never empty
    try {
      this.crypto.encryptSync(plain, first, fileId, stored)
      this.writeCipher(stored, blockCipherOffset(first))
    } finally {
      cipherBuffers.give(stored)
    }
  }

  private writeBehind(first: number, data: Buffer, fileId: Buffer): boolean {
    const at = blockCipherOffset(first)
    const onError = (err: Error): void => {
      this.deferred ??= err
      this.state.cipherBytes = undefined // fstat again: the write may have been short
    }
    const before = this.cipherBytes()
    if (!this.crypto.writeBehind?.(data, first, fileId, this.fh.fd, at, onError)) return false
    this.state.cipherBytes = Math.max(before, at + cipherSize(data.length) - HEADER_LEN)
    return true
  }

  private truncateTo(newSize: number): void {
    const bytes = this.cipherBytes()
    const oldSize = plainSize(bytes)
    if (newSize === oldSize && bytes !== HEADER_LEN) return
    if (newSize === 0) {
      // An empty file has no header; the next write makes a new file ID.
      this.truncateCipher(0)
      return
    }
    if (newSize > oldSize) return this.grow(oldSize, newSize)
    // === shrink: cut at the block boundary, then re-write the partial last block
    const n = Math.floor(newSize / PLAIN_BS)
    const keep = newSize % PLAIN_BS
    if (keep === 0) {
      this.truncateCipher(cipherSize(newSize))
      return
    }
    const fileId = this.fileId()
    const old = this.readBlock(n, fileId)
    this.truncateCipher(blockCipherOffset(n))
    const block = this.crypto.encryptSync(old.subarray(0, keep), n, fileId)
    this.writeCipher(block, blockCipherOffset(n))
  }

  /** file_allocate_truncate.go truncateGrowFile. */
  private grow(oldSize: number, newSize: number): void {
    const fileId = this.ensureHeader()
    // Growing within the last block: one zero byte at the new end, written by RMW.
    if (oldSize > 0 && Math.floor((oldSize - 1) / PLAIN_BS) === Math.floor((newSize - 1) / PLAIN_BS))
      return this.writeBlocks(newSize - 1, Buffer.alloc(1), fileId)
    this.zeroPad(oldSize, fileId)
    // Block-aligned: extend the backing file; the new blocks are holes (all-zero full blocks).
    if (newSize % PLAIN_BS === 0) this.truncateCipher(cipherSize(newSize))
    else this.writeAt(newSize - 1, Buffer.alloc(1))
  }
}

function checkRange(position: number, length: number): void {
  if (!Number.isSafeInteger(position) || position < 0 || !Number.isSafeInteger(length) || length < 0)
    throw new CofferError('ERR_INVALID_ARGUMENT', 'offset and length must be non-negative integers')
}

/** A Buffer view of `data` (no copy: the caller keeps it unchanged until the write resolves). */
function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length)
}

function writeAll(fd: number, data: Buffer, position: number): void {
  let done = 0
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done)
}
