/**
 * Reference tooling for interop tests: a thin `skopeo` wrapper, and `makeSampleLayout`, which writes a
 * small but valid OCI image layout using only Node and tar-stream, so tests can check coffer against
 * images that coffer did not produce.
 */
import { execFile } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { EPOCH, keystream, writeJsonBlob, writeTarGzLayer } from '../../testdata/layout-writer.js'

const execFileP = promisify(execFile)

/** skopeo prints little, but `inspect --raw` of a big index can exceed Node's 1 MiB default. */
const SKOPEO_MAX_BUFFER = 64 * 1024 * 1024
const SKOPEO_TIMEOUT_MS = 120_000

/** Output of a successful skopeo run. */
export interface ExecResult {
  stdout: string
  stderr: string
}

/**
 * Runs `skopeo …args`. `env` is merged over the test process's environment. Throws on a non-zero exit
 * with skopeo's stderr in the message, so a failed copy explains itself in the test report.
 */
export async function skopeo(args: string[], o: { env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  try {
    const { stdout, stderr } = await execFileP('skopeo', args, {
      env: { ...process.env, ...o.env },
      maxBuffer: SKOPEO_MAX_BUFFER,
      timeout: SKOPEO_TIMEOUT_MS,
    })
    return { stdout, stderr }
  } catch (err) {
    const e = err as { code?: number | string; stderr?: string }
    const why = `exit ${e.code ?? 'unknown'}: ${e.stderr?.trim() ?? ''}`
    throw new Error(`skopeo ${redactCreds(args).join(' ')} failed (${why})`, { cause: err })
  }
}

/** `--creds u:p`, `--src-creds=u:p`, … → `u:***`, so passwords stay out of test reports. */
function redactCreds(args: string[]): string[] {
  const hide = (v: string): string => v.replace(/:.*/s, ':***')
  return args.map((a, i) => {
    if (/^--(src-|dest-)?creds=/.test(a)) return a.replace(/=(.*)$/s, (_m, v: string) => `=${hide(v)}`)
    return /^--(src-|dest-)?creds$/.test(args[i - 1] ?? '') ? hide(a) : a
  })
}

/** An OCI descriptor (image-spec descriptor.md), as much of it as the sample uses. */
export interface SampleDescriptor {
  mediaType: string
  digest: string
  size: number
}

/** What `makeSampleLayout` wrote, so tests can compare against it without re-reading the layout. */
export interface SampleImage {
  /** The `org.opencontainers.image.ref.name` in index.json. */
  tag: string
  /** Descriptor of the image manifest, as listed in index.json. */
  manifest: SampleDescriptor
  config: SampleDescriptor
  /** Compressed layers in manifest order; `diffId` is the digest of the uncompressed tar. */
  layers: (SampleDescriptor & { diffId: string })[]
}

const MEDIA_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const MEDIA_CONFIG = 'application/vnd.oci.image.config.v1+json'
const MEDIA_INDEX = 'application/vnd.oci.image.index.v1+json'
const REF_NAME = 'org.opencontainers.image.ref.name'

/**
 * Writes an image `dir:tag` in OCI layout form (image-spec image-layout.md): `oci-layout`,
 * `blobs/sha256/…`, and `index.json` naming the manifest by `org.opencontainers.image.ref.name`.
 * An existing layout in `dir` keeps its other tags; an entry with the same tag is replaced.
 *
 * Each of the `layers` (default 2) gzip'd tars holds `layer-<i>/hello.txt` and `layer-<i>/data.bin`
 * with `layerBytes` (default 4096) keystream bytes. Content is seeded from tag and layer index:
 * the same call always writes the same digests, and big layers barely compress, so byte counts in
 * transfer tests stay close to `layerBytes`. skopeo and `umoci unpack --rootless` accept the result.
 */
export async function makeSampleLayout(
  dir: string,
  tag: string,
  o: { layers?: number; layerBytes?: number } = {},
): Promise<SampleImage> {
  const layerCount = o.layers ?? 2
  const layerBytes = o.layerBytes ?? 4096
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true })
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))

  const layers: SampleImage['layers'] = []
  for (let i = 0; i < layerCount; i++) layers.push(await writeLayer(dir, tag, i, layerBytes))

  // === config: rootfs.diff_ids must list the uncompressed digests in layer order (image-spec config.md)
  const config = await writeJsonBlob(dir, MEDIA_CONFIG, {
    created: EPOCH.toISOString(),
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: EPOCH.toISOString(), created_by: `coffer sample layer ${i}` })),
  })

  // === manifest
  const manifest = await writeJsonBlob(dir, MEDIA_MANIFEST, {
    schemaVersion: 2,
    mediaType: MEDIA_MANIFEST,
    config,
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  })

  // === index.json: keep other tags, replace this one
  const indexPath = join(dir, 'index.json')
  let manifests: IndexEntry[] = []
  try {
    const old = JSON.parse(await readFile(indexPath, 'utf8')) as { manifests?: IndexEntry[] }
    manifests = (old.manifests ?? []).filter((m) => m.annotations?.[REF_NAME] !== tag)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  manifests.push({
    ...manifest,
    platform: { architecture: 'amd64', os: 'linux' },
    annotations: { [REF_NAME]: tag },
  })
  const index = { schemaVersion: 2, mediaType: MEDIA_INDEX, manifests }
  await writeFile(indexPath, JSON.stringify(index))

  return { tag, manifest, config, layers }
}

/** An index.json entry: the manifest's descriptor plus what selects it. */
type IndexEntry = SampleDescriptor & {
  platform?: { architecture: string; os: string }
  annotations?: Record<string, string>
}

/** One layer: `layer-<i>/hello.txt` and `bytes` of keystream seeded by tag and index. */
function writeLayer(
  dir: string,
  tag: string,
  index: number,
  bytes: number,
): Promise<SampleDescriptor & { diffId: string }> {
  const root = `layer-${index}`
  return writeTarGzLayer(dir, [
    { name: `${root}/`, type: 'directory' },
    { name: `${root}/hello.txt`, content: `hello from ${tag} layer ${index}\n` },
    { name: `${root}/data.bin`, size: bytes, stream: keystream(`${tag}/${index}`, bytes) },
  ])
}
