/**
 * The benchmark image: a big OCI layout written fast and kept between runs.
 *
 * Written with `testdata/layout-writer.ts`, as the tests' sample images are: layer content is an
 * AES-128-CTR keystream (incompressible, GB/s), gzip runs at level 1, two layers at a time on the
 * libuv thread pool. Keys derive from the layer index, so a regenerated image has the same digests.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { MediaType } from '../lib/oci/media-types.js'
import { forEachLimit } from '../lib/util/concurrency.js'
import { MiB } from '../lib/util/limits.js'
import {
  EPOCH,
  keystream,
  writeJsonBlob,
  writeTarGzLayer,
  type WrittenBlob,
} from '../testdata/layout-writer.js'

type LayerDescriptor = WrittenBlob & { diffId: string }

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
/** Layers generated at once; zlib and AES run on the thread pool, one layer per core. */
const GENERATE_CONCURRENCY = 2

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
  const layers = new Array<LayerDescriptor>(shape.layers)
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

/** One layer: a directory and `layerBytes` of keystream keyed by the layer index. */
function writeLayer(dir: string, index: number, shape: ImageShape): Promise<LayerDescriptor> {
  return writeTarGzLayer(
    dir,
    [
      { name: `layer-${index}/`, type: 'directory' },
      {
        name: `layer-${index}/data.bin`,
        size: shape.layerBytes,
        stream: keystream(`coffer-bench/layer-${index}`, shape.layerBytes),
      },
    ],
    { gzipLevel: shape.gzipLevel },
  )
}
