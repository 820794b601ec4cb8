import { Decompress as ZstdDecompress } from 'fzstd'
import { Gunzip, type ZlibOptions } from 'minizlib'
import type { Compression } from '../oci/media-types.js'
import { CofferError } from '../util/errors.js'

/**
 * A layer's decompressor, synchronous: each `write` hands back everything its input decompresses
 * to before it returns, so a worker thread runs it without a hop to libuv's pool per chunk (the
 * zlib stream's way, which on a virtual machine cost more CPU than inflating). gzip runs on Node's
 * own zlib (through minizlib, node-tar's binding); zstd on fzstd (Node 20 has no zstd).
 */
export interface Inflater {
  write(compressed: Uint8Array, emit: (out: Buffer) => void): void
  /** The stream must be complete: a truncated one is ERR_OCI_LAYER_INVALID. */
  end(emit: (out: Buffer) => void): void
}

/** zlib's output chunk: small enough for malloc to recycle, big enough to keep calls few. */
const OUT_CHUNK = 64 * 1024

export function createInflater(c: Exclude<Compression, 'none'>): Inflater {
  return c === 'gzip' ? gunzipInflater() : zstdInflater()
}

function gunzipInflater(): Inflater {
  // minizlib hands its options to Node's zlib, whose chunkSize its types do not list.
  const z = new Gunzip({ chunkSize: OUT_CHUNK } as ZlibOptions)
  let sink: ((out: Buffer) => void) | undefined
  let failure: Error | undefined
  z.on('data', (out: Buffer) => sink?.(out))
  z.on('error', (err: unknown) => {
    failure ??= err as Error
  })
  const run = (emit: (out: Buffer) => void, step: () => void): void => {
    if (failure) throw corrupt('gzip', failure)
    sink = emit
    try {
      step()
    } catch (err) {
      failure ??= err as Error
    } finally {
      sink = undefined
    }
    if (failure) throw corrupt('gzip', failure)
  }
  return {
    write: (compressed, emit) =>
      run(emit, () => z.write(Buffer.from(compressed.buffer, compressed.byteOffset, compressed.byteLength))),
    end: (emit) => run(emit, () => z.end()),
  }
}

function zstdInflater(): Inflater {
  let sink: ((out: Buffer) => void) | undefined
  const d = new ZstdDecompress((chunk) =>
    sink?.(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)),
  )
  const run = (emit: (out: Buffer) => void, data: Uint8Array, final: boolean): void => {
    sink = emit
    try {
      d.push(data, final)
    } catch (err) {
      throw corrupt('zstd', err as Error)
    } finally {
      sink = undefined
    }
  }
  return {
    write: (compressed, emit) => run(emit, compressed, false),
    end: (emit) => run(emit, new Uint8Array(0), true),
  }
}

function corrupt(what: string, err: Error): CofferError {
  return err instanceof CofferError
    ? err
    : new CofferError('ERR_OCI_LAYER_INVALID', `${what} stream is corrupt: ${err.message}`, { cause: err })
}
