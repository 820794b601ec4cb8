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
  /** Reads the verified source layer from `read()` and produces its new form. */
  apply(desc: Descriptor, read: () => Promise<Readable>, o: Io): Promise<TransformedLayer>
}
