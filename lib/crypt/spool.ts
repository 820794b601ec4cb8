import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Digester, type Digest } from '../oci/digest.js'
import { removeAfterClose } from '../util/atomic-file.js'
import type { Io } from '../util/io.js'

/** A transformed layer parked on disk: its digest is known, and it can be re-read for retries. */
export interface SpooledBlob {
  readonly digest: Digest
  readonly size: number
  open(offset: number): Promise<Readable>
  remove(): Promise<void>
}

/**
 * Streams `source` through `transforms` into a private temp file, hashing what comes out.
 *
 * Why spool: encryption output is random (a fresh key and nonce per layer), so a retried or
 * resumed upload must send the very same bytes again; and decrypted output may not be used before
 * its HMAC has been checked at EOF. The file lives under $TMPDIR in a 0700 directory and is
 * removed by `remove()`; it never holds a key.
 */
export async function spool(source: Readable, transforms: Transform[], o: Io = {}): Promise<SpooledBlob> {
  const file = await createSpoolFile()
  const digester = new Digester()
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      digester.update(chunk)
      cb(null, chunk)
    },
  })
  const out = createWriteStream(file.path, { flags: 'wx', mode: 0o600, highWaterMark: 1 << 20 })
  try {
    await pipeline([source, ...transforms, tap, out], o.signal ? { signal: o.signal } : {})
  } catch (err) {
    source.destroy()
    await removeAfterClose(out, file.path)
    await file.remove()
    throw err
  }
  return file.blob(digester.digest(), digester.size)
}

/** A spool file to be written by someone else (a layer worker), and the blob it becomes. */
export interface SpoolFile {
  /** Not created yet: the writer creates it (exclusively, 0600). */
  readonly path: string
  /** The written file as a spooled blob, with the digest and size its writer computed. */
  blob(digest: Digest, size: number): SpooledBlob
  remove(): Promise<void>
}

/** A fresh path in a private (0700) directory under $TMPDIR. */
export async function createSpoolFile(): Promise<SpoolFile> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-spool-'))
  const path = join(dir, randomBytes(8).toString('hex'))
  const remove = (): Promise<void> => rm(dir, { recursive: true, force: true })
  return {
    path,
    remove,
    blob: (digest, size) => ({
      digest,
      size,
      open: async (offset) => createReadStream(path, { start: offset, highWaterMark: 1 << 20 }),
      remove,
    }),
  }
}
