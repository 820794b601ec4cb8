/**
 * The benchmark image: a big OCI layout written fast and kept between runs.
 *
 * `test/helpers/skopeo.ts` `makeSampleLayout` fills layers with a per-byte xorshift loop in JS and
 * gzips at the default level; that is fine for the kilobytes tests use but costs tens of seconds
 * at 512 MiB. Here the content is an AES-128-CTR keystream (hardware AES, GB/s, incompressible) and
 * gzip runs at level 1, two layers at a time on the libuv thread pool. Keys derive from the layer
 * index, so a regenerated image has the same digests.
 */
import { createCipheriv, createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable, Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { pack } from 'tar-stream'
import { MediaType } from '../lib/oci/media-types.js'
import { forEachLimit } from '../lib/util/concurrency.js'
import { MiB } from '../lib/util/limits.js'

/** What the image looks like; part of the cache key. */
export interface ImageShape {
  layers: number
  layerBytes: number
  /** gzip level of the layers (1 = fastest that still makes a real `tar+gzip`). */
  gzipLevel: number
}

/** A generated image, as recorded in the cache. */
export interface BenchImage {
  dir: string
  tag: string
  shape: ImageShape
  manifestDigest: string
  /** Config plus layers: what a copy must move. */
  blobs: number
  /** Sum of the blob sizes (config and compressed layers). */
  totalBytes: number
  /** Seconds it took to generate, or 0 when it came from the cache. */
  generatedSeconds: number
}

export const BENCH_TAG = 'bench'
/** Written last: a layout without it is a half-written leftover and is rebuilt. */
const COMPLETE_MARKER = '.bench-complete.json'
const CHUNK = 1 * MiB
/** Layers generated at once; zlib and AES run on the thread pool, one layer per core. */
const GENERATE_CONCURRENCY = 2
/** A fixed mtime, so the tar bytes depend only on the content (2020-01-01T00:00:00Z). */
const EPOCH = new Date(Date.UTC(2020, 0, 1))

/** The cache directory's name for a shape, e.g. `image-8x64MiB-gz1`. */
export function shapeName(shape: ImageShape): string {
  return `image-${shape.layers}x${shape.layerBytes / MiB}MiB-gz${shape.gzipLevel}`
}

/**
 * Returns the image for `shape` under `cacheDir`, generating it first if the cache has no complete
 * copy. Generation streams every layer (no layer is held in memory).
 */
export async function ensureBenchImage(cacheDir: string, shape: ImageShape): Promise<BenchImage> {
  const dir = join(cacheDir, shapeName(shape))
  const cached = await readCached(dir)
  if (cached) return { ...cached, generatedSeconds: 0 }

  await rm(dir, { recursive: true, force: true })
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true })
  const started = performance.now()
  const layers: LayerDescriptor[] = new Array<LayerDescriptor>(shape.layers)
  await forEachLimit(
    Array.from({ length: shape.layers }, (_, i) => i),
    GENERATE_CONCURRENCY,
    async (i) => {
      layers[i] = await writeLayer(dir, i, shape)
    },
  )

  // === config: rootfs.diff_ids lists the uncompressed digests in layer order (image-spec config.md)
  const config = await writeJsonBlob(dir, MediaType.OciConfig, {
    created: EPOCH.toISOString(),
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  })
  // === manifest and index.json
  const manifest = await writeJsonBlob(dir, MediaType.OciManifest, {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config,
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  })
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [{ ...manifest, annotations: { 'org.opencontainers.image.ref.name': BENCH_TAG } }],
    }),
  )
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))

  const image: BenchImage = {
    dir,
    tag: BENCH_TAG,
    shape,
    manifestDigest: manifest.digest,
    blobs: shape.layers + 1,
    totalBytes: config.size + layers.reduce((n, l) => n + l.size, 0),
    generatedSeconds: (performance.now() - started) / 1000,
  }
  await writeFile(join(dir, COMPLETE_MARKER), JSON.stringify(image))
  return image
}

async function readCached(dir: string): Promise<Omit<BenchImage, 'generatedSeconds'> | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, COMPLETE_MARKER), 'utf8')) as BenchImage
  } catch {
    return undefined
  }
}

interface Descriptor {
  mediaType: string
  digest: string
  size: number
}
type LayerDescriptor = Descriptor & { diffId: string }

/** One layer, streamed: tar → (diff_id hash) → gzip → (digest hash) → temp file → rename by digest. */
async function writeLayer(dir: string, index: number, shape: ImageShape): Promise<LayerDescriptor> {
  const tar = pack()
  const header = { uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: EPOCH }
  tar.entry({ ...header, name: `layer-${index}/`, type: 'directory', mode: 0o755 })
  const data = tar.entry({ ...header, name: `layer-${index}/data.bin`, mode: 0o644, size: shape.layerBytes })
  const tmp = join(dir, 'blobs', `.tmp-layer-${index}`)
  const diffId = new HashPass()
  const digest = new HashPass()
  try {
    await Promise.all([
      pipeline(keystream(`coffer-bench/layer-${index}`, shape.layerBytes), data).then(() => tar.finalize()),
      pipeline(
        tar,
        diffId,
        createGzip({ level: shape.gzipLevel, chunkSize: 256 * 1024 }),
        digest,
        createWriteStream(tmp),
      ),
    ])
    const hex = digest.hex()
    await rename(tmp, join(dir, 'blobs', 'sha256', hex))
    return {
      mediaType: MediaType.OciLayerGzip,
      digest: `sha256:${hex}`,
      size: digest.size,
      diffId: `sha256:${diffId.hex()}`,
    }
  } finally {
    await rm(tmp, { force: true })
  }
}

async function writeJsonBlob(dir: string, mediaType: string, value: unknown): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(value))
  const hex = createHash('sha256').update(bytes).digest('hex')
  await writeFile(join(dir, 'blobs', 'sha256', hex), bytes)
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length }
}

/**
 * `length` pseudo-random bytes: the AES-128-CTR keystream under a key derived from `seed`. Not a
 * secret, only fast (AES-NI), deterministic and incompressible.
 */
function keystream(seed: string, length: number): Readable {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  const zeros = Buffer.alloc(CHUNK)
  let left = length
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (left === 0) return void this.push(null)
      const n = Math.min(left, CHUNK)
      left -= n
      this.push(cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n)))
    },
  })
}

/** Passes bytes through unchanged while hashing and counting them. */
class HashPass extends Transform {
  readonly #hash = createHash('sha256')
  size = 0
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk)
    this.size += chunk.length
    cb(null, chunk)
  }
  hex(): string {
    return this.#hash.copy().digest('hex')
  }
}
