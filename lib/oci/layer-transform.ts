import type { Readable } from 'node:stream'
import type { Io } from '../util/io.js'
import type { BlobOpener } from './image-transport.js'
import type { Descriptor } from './schemas.js'

/** A layer in its new form, parked where it can be read again (for retries) and then removed. */
export interface TransformedLayer {
  readonly desc: Descriptor
  readonly open: BlobOpener
  /** Frees what the transformed bytes occupy (a spool file); called once the copy ended. */
  dispose(): Promise<void>
  /**
   * True when the new form was written to `files.target` and digested by the step:
   * the copy then commits that file as the blob instead of streaming `open(0)` to the destination.
   */
  readonly inTarget?: boolean
}

/**
 * Local files a step may use instead of streams, when source and destination are on this machine
 * (OCI layouts): reading and writing them directly, with large buffers and off the main thread,
 * saves a stream hop, a spool file and a second hash of the output.
 */
export interface LayerFiles {
  /**
   * The source blob. **Unverified**: a step that reads it must check its digest and size itself
   * and fail (writing nothing that counts) on a mismatch, as `read()` does.
   */
  readonly source?: string
  /**
   * A path inside the destination, not yet created. A step that writes there creates it
   * exclusively, returns `inTarget: true` and the digest and size of exactly what it wrote; on
   * failure it leaves nothing there. The destination fsyncs it when the copy commits it.
   */
  readonly target?: string
}

/**
 * A step of the copy pipeline that rewrites some layers (encrypt, decrypt), like containers/image's
 * `blobPipeline*Step`s. The copy verifies each source layer against its digest while the step
 * reads it, so a step never works on tampered input; the step returns the new descriptor, and
 * the manifest (and its index) are rewritten around it. Configs are never transformed.
 */
export interface LayerTransform {
  /** Whether layer `index` of `count` (0-based, manifest order) is to be transformed. */
  wants(desc: Descriptor, index: number, count: number): boolean
  /** Reads the verified source layer from `read()` (or `files.source`) and produces its new form. */
  apply(desc: Descriptor, read: () => Promise<Readable>, o: Io, files?: LayerFiles): Promise<TransformedLayer>
}
