import { CofferError } from '../../util/errors.js'

/**
 * Reads TPM-marshalled (big-endian, TPM2B = u16 size + bytes) structures out of untrusted bytes.
 * Every read is bounds-checked; running past the end or a size over its type's maximum is
 * ERR_ATTEST_EVIDENCE_INVALID naming the field, never an exception from Buffer.
 */
export class MarshalReader {
  private offset = 0

  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}

  u8(field: string): number {
    return this.take(1, field)[0]!
  }

  u16(field: string): number {
    const b = this.take(2, field)
    return (b[0]! << 8) | b[1]!
  }

  u32(field: string): number {
    const b = this.take(4, field)
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0
  }

  u64(field: string): bigint {
    const hi = BigInt(this.u32(field))
    const lo = BigInt(this.u32(field))
    return (hi << 32n) | lo
  }

  bytes(n: number, field: string): Uint8Array {
    return this.take(n, field)
  }

  /** A TPM2B: u16 size, then that many bytes; `max` is the type's largest legal size. */
  tpm2b(field: string, max: number): Uint8Array {
    const size = this.u16(field)
    if (size > max) this.fail(`${field} is ${size} bytes, more than the ${max} allowed`)
    return this.take(size, field)
  }

  /** Fails unless every byte was consumed: trailing bytes mean the structure is not what it claims. */
  end(): void {
    const left = this.buf.length - this.offset
    if (left !== 0) this.fail(`${left} trailing bytes`)
  }

  fail(why: string): never {
    throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', `${this.what}: ${why}`)
  }

  private take(n: number, field: string): Uint8Array {
    if (this.offset + n > this.buf.length) this.fail(`truncated in ${field}`)
    const out = this.buf.subarray(this.offset, this.offset + n)
    this.offset += n
    return out
  }
}
