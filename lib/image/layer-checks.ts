/**
 * The checks and transforms between a layer blob as fetched and the tar an unpacker reads: the
 * blob's digest and size, decryption when the layer is `+encrypted` (HMAC, and the plaintext
 * digest the private options recorded), decompression by media type, and optionally the diff_id
 * over the tar. The plan is plain data, so a worker thread can run the same checks; they run
 * synchronously, chunk by chunk. Every check fails at the end at the latest (a blob longer than
 * its descriptor says fails at once); what was emitted before counts only if `end` passed.
 */
import type { StreamDecryption } from '../crypt/decrypt-stream.js'
import { LayerDecryption } from '../crypt/layer-decryption.js'
import { DigestCheck, type Digest } from '../oci/digest.js'
import { layerCompression, type Compression } from '../oci/media-types.js'
import type { Descriptor } from '../oci/schemas.js'
import { CofferError } from '../util/errors.js'
import { createInflater, type Inflater } from './layer-inflate.js'

export interface LayerChecks {
  readonly blob: { readonly digest: Digest; readonly size: number }
  readonly compression: Compression
  /** Present when the layer is encrypted. */
  readonly decryption?: StreamDecryption
  /** Checked over the tar when given; leave out when the consumer hashes the tar itself. */
  readonly diffId?: Digest
}

/** The plan for a layer's descriptor; ERR_OCI_MEDIA_TYPE_UNKNOWN if it is no layer. */
export function layerChecks(
  desc: Descriptor,
  decryption: StreamDecryption | undefined,
  diffId?: Digest,
): LayerChecks {
  const compression = layerCompression(desc.mediaType)
  if (!compression)
    throw new CofferError(
      'ERR_OCI_MEDIA_TYPE_UNKNOWN',
      `layer ${desc.digest} has media type ${desc.mediaType}, which is not a layer`,
    )
  return {
    blob: { digest: desc.digest as Digest, size: desc.size },
    compression,
    ...(decryption ? { decryption } : {}),
    ...(diffId ? { diffId } : {}),
  }
}

/**
 * The cipher returns a new buffer per call: in slices this small malloc recycles them instead of
 * mapping fresh pages for each (page faults are dear on a virtual machine).
 */
const CIPHER_SLICE = 64 * 1024
/** Compressed input per decompressor call, at most and at least (see `sliceBytes`). */
const MAX_SLICE = 64 * 1024
const MIN_SLICE = 4 * 1024
/** What one decompressor call should produce, about. */
const OUTPUT_PER_SLICE = 256 * 1024

/** Runs a layer's checks over its blob, chunk by chunk; see the file comment. */
export class LayerChecker {
  private readonly blob: DigestCheck
  private readonly decryption: LayerDecryption | undefined
  private readonly inflater: Inflater | undefined
  private readonly tar: DigestCheck | undefined
  private slice = MIN_SLICE
  private tarBytes = 0
  /**
   * A decompression error, held until `end`: a tampered blob usually breaks the compressed stream
   * first, and the blob digest (or the HMAC) is the truer diagnosis, known only at the end.
   */
  private inflateFailure: Error | undefined

  constructor(plan: LayerChecks) {
    this.blob = new DigestCheck(plan.blob.digest, plan.blob.size)
    const d = plan.decryption
    this.decryption = d && new LayerDecryption(d.key, d.plaintextDigest)
    this.inflater = plan.compression === 'none' ? undefined : createInflater(plan.compression)
    this.tar = plan.diffId ? new DigestCheck(plan.diffId) : undefined
  }

  /** Bytes of the blob taken so far. */
  get fetched(): number {
    return this.blob.size
  }

  /**
   * How much of the blob the next `write` should get: what decompresses to about 256 KiB, by the
   * ratio seen so far. A zip bomb (zlib expands up to ~1000×) then yields at most a few MiB per
   * call, so a caller that honours backpressure between calls keeps memory bounded.
   */
  get sliceBytes(): number {
    return this.inflater ? this.slice : MAX_SLICE
  }

  /** Blob bytes in; the tar they yield goes to `emit`. Throws when a check fails. */
  write(chunk: Uint8Array, emit: (tar: Buffer) => void): void {
    this.blob.update(chunk)
    const d = this.decryption
    if (!d) return this.decompress(chunk, emit)
    for (let at = 0; at < chunk.length; at += CIPHER_SLICE)
      this.decompress(d.update(chunk.subarray(at, at + CIPHER_SLICE)), emit)
  }

  /** After the last byte: every check that needs the whole blob. Throws when one fails. */
  end(emit: (tar: Buffer) => void): void {
    this.blob.verify()
    const tail = this.decryption?.final() // empty for CTR
    if (tail?.length) this.decompress(tail, emit)
    if (this.inflateFailure) throw this.inflateFailure
    this.inflater?.end((out) => this.out(out, emit))
    this.tar?.verify()
  }

  private decompress(data: Buffer | Uint8Array, emit: (tar: Buffer) => void): void {
    if (!this.inflater) return this.out(Buffer.from(data.buffer, data.byteOffset, data.byteLength), emit)
    if (this.inflateFailure) return
    const before = this.tarBytes
    try {
      this.inflater.write(data, (out) => this.out(out, emit))
    } catch (err) {
      this.inflateFailure = err as Error
      return
    }
    const ratio = Math.max(1, (this.tarBytes - before) / Math.max(1, data.length))
    this.slice = Math.min(MAX_SLICE, Math.max(MIN_SLICE, Math.floor(OUTPUT_PER_SLICE / ratio)))
  }

  private out(tar: Buffer, emit: (tar: Buffer) => void): void {
    this.tarBytes += tar.length
    this.tar?.update(tar)
    emit(tar)
  }
}
