import { open } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { CofferError, type CofferErrorCode } from './errors.js'

/** Every I/O call takes this last (containerd's ctx). */
export interface Io {
  signal?: AbortSignal
}

/**
 * Reads a whole stream into memory, failing with `code` once more than `limit` bytes arrive.
 * Only for small documents (manifests, configs, JSON bodies), never layers.
 */
export async function readAllLimited(
  source: AsyncIterable<Uint8Array> | Readable,
  limit: number,
  what: string,
  code: CofferErrorCode = 'ERR_TOO_LARGE',
): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of source as AsyncIterable<Uint8Array>) {
    total += chunk.length
    if (total > limit) {
      if (source instanceof Readable) source.destroy()
      throw new CofferError(code, `${what} is larger than the ${limit}-byte limit`)
    }
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
  }
  return Buffer.concat(chunks, total)
}

/** Throws ERR_CANCELED if the signal has fired. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CofferError('ERR_CANCELED', 'operation canceled', { cause: signal.reason })
}

/**
 * Reads a small file whole (ERR_TOO_LARGE past `limit` bytes). A file that does not exist
 * (ENOENT/ENOTDIR) is `undefined`, so optional configuration files need no separate stat; other
 * I/O errors become `code`, naming the file but never its content.
 */
export async function readOptionalFileLimited(
  path: string,
  limit: number,
  what: string,
  code: CofferErrorCode,
): Promise<Buffer | undefined> {
  try {
    const fh = await open(path, 'r')
    try {
      return await readAllLimited(fh.createReadStream({ autoClose: false }), limit, what)
    } finally {
      await fh.close()
    }
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code
    if (errno === 'ENOENT' || errno === 'ENOTDIR') return undefined
    if (err instanceof CofferError) throw err
    throw new CofferError(code, `cannot read ${what}: ${errno ?? 'read error'}`, { cause: err })
  }
}
