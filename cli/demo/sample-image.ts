import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import { pack } from 'tar-stream'
import { digestOf, type Digest } from '../../lib/oci/digest.js'
import { openLayout } from '../../lib/oci/layout/layout-store.js'
import { parseManifestDocument } from '../../lib/oci/manifest.js'
import { MediaType } from '../../lib/oci/media-types.js'
import { hostPlatform } from '../../lib/oci/platform.js'
import type { Descriptor } from '../../lib/oci/schemas.js'

/** One file or directory in a sample layer. */
export interface SampleEntry {
  path: string
  type?: 'file' | 'directory' | 'symlink'
  content?: string | Buffer
  mode?: number
  linkname?: string
}

/** The demo image: a tiny root filesystem in two layers. */
export const SAMPLE_LAYERS: SampleEntry[][] = [
  [
    { path: 'etc', type: 'directory', mode: 0o755 },
    { path: 'etc/os-release', content: 'NAME="coffer sample"\nID=coffer-sample\nVERSION_ID=1\n' },
    { path: 'bin', type: 'directory', mode: 0o755 },
    { path: 'bin/hello', content: '#!/bin/sh\necho "hello from a coffer image"\n', mode: 0o755 },
  ],
  [
    { path: 'app', type: 'directory', mode: 0o755 },
    {
      path: 'app/message.txt',
      content: 'This file travelled through a registry and came back byte for byte.\n',
    },
    { path: 'app/hello', type: 'symlink', linkname: '../bin/hello' },
  ],
]

/** A fixed timestamp, so the sample image has the same digests on every machine. */
const EPOCH = new Date('2026-01-01T00:00:00Z')

/** An uncompressed tar of `entries`, deterministic (fixed mtime, owner root). */
export async function tarOf(entries: SampleEntry[]): Promise<Buffer> {
  const p = pack()
  const chunks: Buffer[] = []
  p.on('data', (c: unknown) => {
    chunks.push(c as Buffer)
  })
  const ended = new Promise<void>((resolve, reject) => {
    p.on('end', resolve)
    p.on('error', reject)
  })
  for (const e of entries) {
    const header = { name: e.path, mtime: EPOCH, uid: 0, gid: 0, uname: 'root', gname: 'root' }
    if (e.type === 'directory') p.entry({ ...header, type: 'directory', mode: e.mode ?? 0o755 })
    else if (e.type === 'symlink')
      p.entry({ ...header, type: 'symlink', linkname: e.linkname ?? '', mode: 0o777 })
    else p.entry({ ...header, type: 'file', mode: e.mode ?? 0o644 }, Buffer.from(e.content ?? ''))
  }
  p.finalize()
  await ended
  return Buffer.concat(chunks)
}

/**
 * Builds a single-platform OCI image from `layers` into the layout at `dir` (created if needed)
 * and tags it. Returns the manifest's descriptor.
 */
export async function buildSampleImage(
  dir: string,
  tag: string,
  layers: SampleEntry[][] = SAMPLE_LAYERS,
): Promise<Descriptor> {
  const store = await openLayout(dir, { create: true })
  const layerDescs: Descriptor[] = []
  const diffIds: Digest[] = []
  for (const entries of layers) {
    const tar = await tarOf(entries)
    diffIds.push(`sha256:${createHash('sha256').update(tar).digest('hex')}`)
    const gz = gzipSync(tar, { level: 9 })
    layerDescs.push({
      mediaType: MediaType.OciLayerGzip,
      digest: await store.writeBlobBytes(gz),
      size: gz.length,
    })
  }
  const platform = hostPlatform()
  const config = Buffer.from(
    JSON.stringify({
      created: EPOCH.toISOString(),
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config: {
        Cmd: ['/bin/hello'],
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: layers.map((_, i) => ({
        created: EPOCH.toISOString(),
        created_by: `coffer sample layer ${i + 1}`,
      })),
    }),
  )
  const configDesc: Descriptor = {
    mediaType: MediaType.OciConfig,
    digest: await store.writeBlobBytes(config),
    size: config.length,
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: configDesc,
      layers: layerDescs,
    }),
  )
  const doc = parseManifestDocument(manifest, { expectedDigest: digestOf(manifest) })
  await store.writeBlobBytes(doc.bytes)
  const desc: Descriptor = { mediaType: MediaType.OciManifest, digest: doc.digest, size: manifest.length }
  await store.setTag(desc, tag)
  return desc
}
