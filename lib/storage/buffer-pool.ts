/**
 * Reusable buffers of one size. The FUSE server handles a 128 KiB request with a 132 KiB buffer of
 * ciphertext; allocating it per request made V8 count ~1 GiB of ArrayBuffer memory per 256 MiB
 * read or written, and it answers that with a full mark-compact every 64 MiB or so. Only a buffer
 * that `take` gave out may be given back, once nothing refers to it any more.
 */
export class BufferPool {
  private readonly free: Buffer[] = []

  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}

  /** `length` bytes (uninitialised); from the pool if `length` ≤ size. */
  take(length: number): Buffer {
    if (length > this.size) return Buffer.allocUnsafe(length)
    return (this.free.pop() ?? Buffer.allocUnsafeSlow(this.size)).subarray(0, length)
  }

  /** Returns a buffer from `take` (a view of it is fine); others are left to the GC. */
  give(b: Buffer): void {
    if (b.byteOffset !== 0 || b.buffer.byteLength !== this.size || this.free.length >= this.keep) return
    this.free.push(Buffer.from(b.buffer, 0, this.size))
  }
}
