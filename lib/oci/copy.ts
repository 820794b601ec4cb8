import { pipeline, type Readable, type Transform } from 'node:stream'
import { forEachLimit } from '../util/concurrency.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { countingStream } from '../util/streams.js'
import type { CopyEventSink } from './copy-events.js'
import type { BlobIngest, BlobOpener, ImageDestination, ImageSource } from './image-transport.js'
import type { LayerTransform, TransformedLayer } from './layer-transform.js'
import { rewriteIndex, rewriteManifest } from './rewrite-manifest.js'
import { verifyingStream, type Digest } from './digest.js'
import type { ManifestDocument } from './manifest.js'
import { formatPlatform, hostPlatform, requireManifest, type PlatformSpec } from './platform.js'
import type { Descriptor } from './schemas.js'

export interface CopyOptions extends Io {
  /** Which image of a multi-platform index to copy (default: this machine's platform). */
  platform?: PlatformSpec
  /** Copy the whole index with every image in it (skopeo `--all`). */
  all?: boolean
  /** Blobs in flight at once (containers/image copies 6 layers in parallel). */
  concurrency?: number
  onEvent?: CopyEventSink
  /** Rewrites selected layers on the way (encryption, decryption); manifests are rewritten to match. */
  layerTransform?: LayerTransform
}

export interface CopyResult {
  /** Digest of the manifest (or index) the destination reference now names. */
  digest: Digest
  mediaType: string
  blobsCopied: number
  blobsSkipped: number
  bytesCopied: number
}

export const DEFAULT_COPY_CONCURRENCY = 6
/** Nested indexes deeper than this are refused: a cycle or a hostile document. */
const MAX_INDEX_DEPTH = 4

/**
 * Copies an image from `src` to `dest` byte for byte: every manifest keeps its digest. Blobs go
 * first (concurrently, bounded, skipped when present or mountable), then child manifests, then
 * the top-level manifest, then `commit`, so the destination reference never names an incomplete
 * image. No layer is held in memory; blobs stream from source to destination, and the
 * destination verifies digest and size before anything becomes visible. (A layer a transform
 * wrote into the destination itself was hashed by the transform as it wrote it; the destination
 * re-checks its size.)
 */
export async function copyImage(
  src: ImageSource,
  dest: ImageDestination,
  o: CopyOptions = {},
): Promise<CopyResult> {
  const stats = { blobsCopied: 0, blobsSkipped: 0, bytesCopied: 0 }
  const emit = o.onEvent ?? (() => {})
  // Only the signal travels down; the rest of the options are the copy's own business.
  const io: Io = o.signal ? { signal: o.signal } : {}
  const top = await src.getManifest(undefined, io)
  emit({ type: 'manifest-resolved', digest: top.digest, mediaType: top.mediaType })

  let written: ManifestDocument
  if (top.kind === 'index' && !o.all) {
    // As skopeo without --all: the destination gets the one image for the platform, not the index.
    const want = o.platform ?? hostPlatform()
    const chosen = requireManifest(top.index.manifests, want, src.name)
    const child = await getChild(src, chosen, io)
    emit({
      type: 'manifest-resolved',
      digest: child.digest,
      mediaType: child.mediaType,
      platform: formatPlatform(want),
    })
    if (child.kind !== 'manifest')
      throw new CofferError(
        'ERR_OCI_MANIFEST_INVALID',
        `${src.name}: the ${formatPlatform(want)} entry is itself an index`,
      )
    written = child
  } else {
    written = top
  }
  const transformed: TransformedLayer[] = []
  try {
    written = await copyTree(written, true, 0)
    await dest.commit(io)
  } finally {
    await Promise.all(transformed.map((t) => t.dispose()))
  }
  emit({ type: 'done', digest: written.digest, mediaType: written.mediaType })
  return { digest: written.digest, mediaType: written.mediaType, ...stats }

  /** Copies a manifest or index with everything below it; returns what was written (rewritten if layers changed). */
  async function copyTree(doc: ManifestDocument, isTop: boolean, depth: number): Promise<ManifestDocument> {
    let out: ManifestDocument
    if (doc.kind === 'index') {
      if (depth >= MAX_INDEX_DEPTH)
        throw new CofferError(
          'ERR_OCI_MANIFEST_INVALID',
          `${src.name}: indexes nested deeper than ${MAX_INDEX_DEPTH}`,
        )
      const children: Descriptor[] = []
      for (const desc of doc.index.manifests) {
        const child = await copyTree(await getChild(src, desc, io), false, depth + 1)
        children.push(
          child.digest === desc.digest
            ? desc
            : { ...desc, mediaType: child.mediaType, digest: child.digest, size: child.bytes.length },
        )
      }
      out = children.every((c, i) => c === doc.index.manifests[i]) ? doc : rewriteIndex(doc, children)
    } else {
      const layers = await copyBlobs(doc.manifest.config, doc.manifest.layers)
      out = layers.every((l, i) => l === doc.manifest.layers[i]) ? doc : rewriteManifest(doc, layers)
    }
    await dest.putManifest(out, { ...io, top: isTop })
    emit({ type: 'manifest-written', digest: out.digest, mediaType: out.mediaType, top: isTop })
    return out
  }

  /** Copies the config and the layers; returns the layer descriptors as written. */
  async function copyBlobs(config: Descriptor, layers: Descriptor[]): Promise<Descriptor[]> {
    const t = o.layerTransform
    const wanted = new Set(
      t ? layers.filter((d, i) => t.wants(d, i, layers.length)).map((d) => d.digest) : [],
    )
    const results = new Map<string, Descriptor>()
    const ingested: Ingested[] = []
    try {
      await forEachLimit(
        uniqueBlobs([config, ...layers]),
        o.concurrency ?? DEFAULT_COPY_CONCURRENCY,
        async (desc, signal) => {
          const blobIo = { signal }
          if (t && wanted.has(desc.digest) && desc !== config) {
            // === transform: read the verified source layer, write its new form to a spool (or,
            // between layouts, straight into the destination)
            const read = async (): Promise<Readable> =>
              pipe(await src.getBlob(desc, blobIo), verifyingStream(desc.digest, desc.size))
            // Both ends on this machine: the step may read the source file and write straight
            // into the destination (one read, one write, off the main thread).
            const source = await src.blobFile?.(desc, blobIo)
            const ingest = source !== undefined ? await dest.openBlobIngest?.(blobIo) : undefined
            let layer: TransformedLayer
            try {
              layer = await t.apply(desc, read, blobIo, {
                ...(source !== undefined ? { source } : {}),
                ...(ingest ? { target: ingest.path } : {}),
              })
            } catch (err) {
              await ingest?.abort()
              throw err
            }
            transformed.push(layer)
            results.set(desc.digest, layer.desc)
            if (ingest && layer.inTarget) {
              // The fsync starts now, overlapping with the other layers' work.
              ingested.push({ desc: layer.desc, ingest, synced: ingest.sync(layer.desc) })
              ingested.at(-1)!.synced.catch(() => {}) // awaited below; never unhandled
              return
            }
            await ingest?.abort()
            await putOne(layer.desc, layer.open, blobIo)
            return
          }
          await putOne(desc, (offset) => src.getBlob(desc, { ...blobIo, offset }), blobIo)
          results.set(desc.digest, desc)
        },
        o.signal,
      )
      // Only once every layer was transformed does any written-in-place layer become a blob: a
      // decryption that fails on one layer leaves no plaintext of the others in the destination.
      const commits = await Promise.allSettled(ingested.map((i) => commitIngested(i)))
      const failed = commits.find((c) => c.status === 'rejected')
      if (failed) throw failed.reason
    } finally {
      // Removes what was not committed; a committed ingest is no longer at its temp path.
      await Promise.all(ingested.map((i) => i.ingest.abort()))
    }
    return layers.map((d) => results.get(d.digest) ?? d)
  }

  /** A layer a step wrote into the destination itself: it becomes visible now. */
  async function commitIngested({ desc, ingest, synced }: Ingested): Promise<void> {
    emit({ type: 'blob-start', digest: desc.digest, size: desc.size, mediaType: desc.mediaType })
    await synced
    await ingest.commit(desc)
    emit({ type: 'blob-progress', digest: desc.digest, bytes: desc.size, size: desc.size })
    stats.blobsCopied++
    stats.bytesCopied += desc.size
    emit({ type: 'blob-done', digest: desc.digest, size: desc.size })
  }

  /** One blob to the destination: skipped if present, mounted if possible, else streamed. */
  async function putOne(desc: Descriptor, open: BlobOpener, blobIo: Io): Promise<void> {
    if (await dest.hasBlob(desc, blobIo)) {
      stats.blobsSkipped++
      emit({ type: 'blob-skipped', digest: desc.digest, size: desc.size, reason: 'exists' })
      return
    }
    if (await dest.tryMountBlob(desc, src, blobIo)) {
      stats.blobsSkipped++
      emit({ type: 'blob-skipped', digest: desc.digest, size: desc.size, reason: 'mounted' })
      return
    }
    emit({ type: 'blob-start', digest: desc.digest, size: desc.size, mediaType: desc.mediaType })
    let sent = 0
    await dest.putBlob(
      desc,
      async (offset) => {
        // === progress: counts what the destination consumed, resumed offsets included
        const counter = countingStream((bytes) => {
          sent = bytes
          emit({ type: 'blob-progress', digest: desc.digest, bytes, size: desc.size })
        }, offset)
        return pipe(await open(offset), counter)
      },
      blobIo,
    )
    stats.blobsCopied++
    stats.bytesCopied += sent
    emit({ type: 'blob-done', digest: desc.digest, size: desc.size })
  }
}

/** A transformed layer written in place, waiting for its fsync and its commit. */
interface Ingested {
  desc: Descriptor
  ingest: BlobIngest
  synced: Promise<void>
}

/** `a | b` with errors carried forward (stream.pipeline, not a bare pipe). */
function pipe(from: Readable, to: Transform): Transform {
  return pipeline(from, to, () => {})
}

/** A child of an index, whose media type must agree with the index's descriptor. */
async function getChild(src: ImageSource, desc: Descriptor, o: Io): Promise<ManifestDocument> {
  const child = await src.getManifest(desc.digest, o)
  if (child.mediaType !== desc.mediaType) {
    throw new CofferError(
      'ERR_OCI_MANIFEST_INVALID',
      `${src.name}: manifest ${desc.digest} is ${child.mediaType}, but its index says ${desc.mediaType}`,
    )
  }
  if (child.bytes.length !== desc.size) {
    throw new CofferError(
      'ERR_OCI_SIZE_MISMATCH',
      `${src.name}: manifest ${desc.digest} has ${child.bytes.length} bytes, its index says ${desc.size}`,
    )
  }
  return child
}

function uniqueBlobs(descs: Descriptor[]): Descriptor[] {
  const seen = new Set<string>()
  return descs.filter((d) => !seen.has(d.digest) && seen.add(d.digest))
}
