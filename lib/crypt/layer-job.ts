import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  timingSafeEqual,
  type Cipher,
  type Hmac,
} from 'node:crypto'
import { closeSync, openSync, readSync, rmSync } from 'node:fs'
import { DigestCheck, Digester, type Digest } from '../oci/digest.js'
import { MiB } from '../util/limits.js'
import { writevAllSync } from '../util/writev-all.js'
import { decryptFailed } from './decrypt-failed.js'

/**
 * One layer's whole crypto pass, file to file, as plain data so it can be posted to a worker
 * thread. Every byte is read once and written once; on the way it is hashed against the source
 * descriptor, run through AES-256-CTR, MAC'd with HMAC-SHA256 (over the ciphertext) and hashed
 * again for the new descriptor. The source file is untrusted: its digest and size are checked as
 * it is read, and nothing the job wrote counts until it resolved.
 */
export interface LayerJob {
  readonly op: 'encrypt' | 'decrypt'
  readonly key: Uint8Array
  /** The 16-byte initial counter block. */
  readonly nonce: Uint8Array
  /** The blob to read, checked against its descriptor's digest and size. */
  readonly source: { readonly path: string; readonly digest: Digest; readonly size: number }
  /**
   * Created exclusively (0600); removed again if the job fails. Not fsynced: whoever commits it
   * does that, so this thread can go on with the next layer while the disk catches up.
   */
  readonly target: { readonly path: string }
  /** decrypt: the HMAC the ciphertext must have. */
  readonly hmac?: Uint8Array
  /** decrypt: the plaintext digest the private options recorded, if any. */
  readonly plaintextDigest?: Digest
}

export interface LayerJobResult {
  /** Digest and size of what was written to the target. */
  readonly digest: Digest
  readonly size: number
  /** encrypt: the HMAC of the ciphertext, for the public options. */
  readonly hmac: Uint8Array
}

/**
 * Reads and writes go 1 MiB at a time (one syscall each instead of sixteen), into one input
 * buffer that is reused. Fresh 1 MiB buffers would be mmap'd and page-faulted one by one
 * (measured: 4× the CPU of the crypto itself).
 */
const CHUNK_BYTES = 1 * MiB
/**
 * The cipher, which can only return new buffers, works in slices this small, so malloc recycles
 * them from its arena instead of mapping fresh pages for each.
 */
const SLICE_BYTES = 64 * 1024

/** How often (in chunks) a worker frees the cipher's dead output buffers; see young-gc.ts. */
const COLLECT_EVERY_CHUNKS = 4

export interface RunOptions {
  signal?: AbortSignal
  /** Called every few MiB to free garbage early (worker threads only). */
  collect?: () => void
}

/**
 * Runs the job with blocking reads and writes, on purpose: a layer worker thread has nothing
 * else to do, a blocking loop has no promise hops per chunk, and libuv's shared pool of four I/O
 * threads stays free for the main thread's fsyncs of finished layers, so the workers' reads and
 * writes never queue behind them. On the calling thread (the fallback) it blocks that thread for
 * the whole layer and cannot be aborted once started; on a worker, an abort terminates the thread.
 */
export async function runLayerJob(job: LayerJob, o: RunOptions = {}): Promise<LayerJobResult> {
  return runLayerJobSync(job, o)
}

function runLayerJobSync(job: LayerJob, { signal, collect }: RunOptions): LayerJobResult {
  const sourceCheck = new DigestCheck(job.source.digest, job.source.size)
  const targetHash = new Digester()
  const mac = createHmac('sha256', job.key)
  const cipher: Cipher =
    job.op === 'encrypt'
      ? createCipheriv('aes-256-ctr', job.key, job.nonce)
      : createDecipheriv('aes-256-ctr', job.key, job.nonce)
  const input = openSync(job.source.path, 'r')
  let output: number | undefined
  try {
    output = openSync(job.target.path, 'wx', 0o600)
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES)
    for (let chunks = 1; ; chunks++) {
      const chunk = readChunk(input, buffer)
      if (chunk.length === 0) break
      signal?.throwIfAborted()
      sourceCheck.update(chunk)
      const out = transform(job.op, cipher, mac, chunk)
      for (const slice of out) targetHash.update(slice)
      writevAllSync(output, out)
      if (collect && chunks % COLLECT_EVERY_CHUNKS === 0) collect()
    }
    sourceCheck.verify()
    const hmac = mac.digest()
    if (job.op === 'decrypt' && !(job.hmac && job.hmac.length === 32 && timingSafeEqual(hmac, job.hmac)))
      throw decryptFailed()
    const digest = targetHash.digest()
    if (job.op === 'decrypt' && job.plaintextDigest && digest !== job.plaintextDigest) throw decryptFailed()
    return { digest, size: targetHash.size, hmac }
  } catch (err) {
    if (output !== undefined) {
      // Only a file this job created is removed (never one that was in the way of 'wx').
      closeSync(output)
      output = undefined
      rmSync(job.target.path, { force: true })
    }
    throw err
  } finally {
    if (output !== undefined) closeSync(output)
    closeSync(input)
  }
}

/** CTR update: the MAC covers the ciphertext, which is the output when encrypting and the input when decrypting. */
function transform(op: LayerJob['op'], cipher: Cipher, mac: Hmac, chunk: Buffer): Buffer[] {
  if (op === 'decrypt') mac.update(chunk)
  const out: Buffer[] = []
  for (let at = 0; at < chunk.length; at += SLICE_BYTES) {
    const slice = cipher.update(chunk.subarray(at, at + SLICE_BYTES))
    if (op === 'encrypt') mac.update(slice)
    out.push(slice)
  }
  return out
}

function readChunk(fd: number, buf: Buffer): Buffer {
  let filled = 0
  // A short read is not EOF (a pipe, a signal): fill the chunk or reach EOF.
  while (filled < buf.length) {
    const n = readSync(fd, buf, filled, buf.length - filled, null)
    if (n === 0) break
    filled += n
  }
  return buf.subarray(0, filled)
}
