import { Readable } from 'node:stream'
import { LayerChecker, type LayerChecks } from '../layer-checks.js'
import type { UnpackOptions, UnpackResult } from '../unpack/types.js'
import { unpackHashed } from '../unpack/unpack-hashed.js'

/** Unpack options that can cross to a worker thread: no signal, no callback. */
export type PortableUnpackOptions = Omit<UnpackOptions, 'signal' | 'onWarning'>

/**
 * The tar the unpacker may have buffered before the checks wait for it. Small on purpose: every
 * buffer alive when the worker's young generation is collected moves to the old one, whose dead
 * buffers wait for a rare full collection (measured: 1 MiB here peaked 15 MiB higher than 256 KiB
 * for a 512 MiB pull, at the same speed).
 */
const TAR_BUFFER_BYTES = 256 * 1024

/**
 * One layer from its blob to a staging directory: blob chunks go through the layer's checks
 * (digest, decryption, decompression: `LayerChecker`, synchronous) into the unpacker, which
 * hashes the tar it reads. The same code runs on a stage worker thread and, where there is none,
 * on the calling thread.
 *
 * Memory stays bounded whatever the blob holds: `write` resolves only once the unpacker has room
 * again, and the checker is fed slices sized by the compression ratio seen so far, so even a zip
 * bomb only ever yields a few MiB at a time. A failed check fails `done`, after the unpacker
 * stopped writing; what it wrote is the caller's to remove.
 */
export class StageJob {
  readonly done: Promise<{ diffId: string; result: UnpackResult }>
  private readonly checker: LayerChecker
  private readonly tar: Readable
  private full = false
  private room: (() => void) | undefined

  constructor(checks: LayerChecks, dest: string, o: UnpackOptions) {
    this.checker = new LayerChecker(checks)
    this.tar = new Readable({ highWaterMark: TAR_BUFFER_BYTES, read: () => this.wake() })
    // Ends a wait for room when the unpacker stops reading (a refused entry, an abort).
    this.tar.on('close', () => this.wake())
    this.done = unpackHashed(this.tar, dest, o)
    this.done.catch(() => undefined) // the caller awaits it; a failure before that is not unhandled
  }

  /** Bytes of the blob taken so far. */
  get fetched(): number {
    return this.checker.fetched
  }

  /** True once the tar was ended or failed: more blob is of no use. */
  get stopped(): boolean {
    return this.tar.destroyed || this.tar.readableEnded
  }

  /** Runs `chunk` through the checks into the unpacker; resolves when it may be reused. */
  async write(chunk: Uint8Array): Promise<void> {
    for (let at = 0; at < chunk.length && !this.tar.destroyed;) {
      const n = Math.min(this.checker.sliceBytes, chunk.length - at)
      try {
        this.checker.write(chunk.subarray(at, at + n), this.emit)
      } catch (err) {
        this.tar.destroy(err as Error)
        return
      }
      at += n
      if (this.full && !this.tar.destroyed) await new Promise<void>((resolve) => (this.room = resolve))
    }
  }

  /** The blob is complete: the final checks, then the end of the tar. */
  end(): void {
    if (this.tar.destroyed) return
    try {
      this.checker.end(this.emit)
      this.tar.push(null)
    } catch (err) {
      this.tar.destroy(err as Error)
    }
  }

  /** The blob could not be read to its end. */
  fail(err: Error): void {
    this.tar.destroy(err)
  }

  private readonly emit = (tar: Buffer): void => {
    if (!this.tar.push(tar)) this.full = true
  }

  private wake(): void {
    this.full = false
    const room = this.room
    this.room = undefined
    room?.()
  }
}
