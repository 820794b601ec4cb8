/**
 * Multi-platform indexes, chunked uploads, the referrers fallback, tag listing and mirrors,
 * against a real registry, with skopeo as the independent reader.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildSampleImage } from '../../cli/demo/sample-image.js'
import { digestOf } from '../../lib/oci/digest.js'
import { openLayout } from '../../lib/oci/layout/layout-store.js'
import { parseManifestDocument } from '../../lib/oci/manifest.js'
import { MediaType } from '../../lib/oci/media-types.js'
import { parseDockerReference } from '../../lib/oci/reference.js'
import { pullEndpoints } from '../../lib/oci/registry/access.js'
import { openRegistryDestination } from '../../lib/oci/registry/registry-destination.js'
import { openRegistrySource } from '../../lib/oci/registry/registry-source.js'
import { parseRegistriesConf } from '../../lib/oci/registry/registries-conf.js'
import { copyImage } from '../../lib/oci/copy.js'
import type { Descriptor } from '../../lib/oci/schemas.js'
import { coffer, resultOf } from '../helpers/coffer.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { skopeo } from '../helpers/skopeo.js'

let work: string
let reg: TestRegistry
let index: Descriptor
let amd64: Descriptor
let arm64: Descriptor

/** A layout holding an OCI index of two images (linux/amd64, linux/arm64/v8), tagged `multi`. */
async function buildIndexLayout(dir: string): Promise<void> {
  amd64 = await buildSampleImage(dir, 'amd64', [[{ path: 'arch', content: 'amd64\n' }]])
  arm64 = await buildSampleImage(dir, 'arm64', [[{ path: 'arch', content: 'arm64\n' }]])
  const store = await openLayout(dir)
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        { ...amd64, platform: { os: 'linux', architecture: 'amd64' } },
        { ...arm64, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    }),
  )
  index = { mediaType: MediaType.OciIndex, digest: await store.writeBlobBytes(bytes), size: bytes.length }
  await store.setTag(index, 'multi')
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-features-'))
  await buildIndexLayout(join(work, 'src'))
  reg = await startRegistry()
})
afterAll(async () => {
  await reg?.stop()
  await rm(work, { recursive: true, force: true })
})

describe('multi-platform images', () => {
  it('--all copies the index and every image; the index digest is kept', async () => {
    const run = await coffer([
      'copy',
      '--all',
      '--json',
      `oci:${join(work, 'src')}:multi`,
      `docker://${reg.host}/m/app:all`,
    ])
    expect(run.code).toBe(0)
    expect(resultOf(run).digest).toBe(index.digest)
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/m/app:all`])
    expect(digestOf(raw.stdout)).toBe(index.digest)
    const back = join(work, 'all-back')
    expect((await coffer(['copy', '--all', `docker://${reg.host}/m/app:all`, `oci:${back}:x`])).code).toBe(0)
    // skopeo picks the arm64 image out of the index coffer copied, and gets the same manifest.
    await skopeo([
      'copy',
      '--override-arch',
      'arm64',
      '--override-variant',
      'v8',
      `oci:${back}:x`,
      `oci:${join(work, 'sk-arm')}:y`,
    ])
    expect(digestOf((await skopeo(['inspect', '--raw', `oci:${join(work, 'sk-arm')}:y`])).stdout)).toBe(
      arm64.digest,
    )
    const rawIndex = await skopeo(['inspect', '--raw', `oci:${back}:x`])
    expect(digestOf(rawIndex.stdout)).toBe(index.digest)
  })

  it('without --all, the image for --platform is copied alone, as skopeo does', async () => {
    const run = await coffer([
      'copy',
      '--json',
      '--platform',
      'linux/arm64',
      `docker://${reg.host}/m/app:all`,
      `oci:${join(work, 'one')}:x`,
    ])
    expect(run.code).toBe(0)
    expect(resultOf(run).digest).toBe(arm64.digest)
    const host = await coffer([
      'copy',
      '--json',
      `docker://${reg.host}/m/app:all`,
      `oci:${join(work, 'host')}:x`,
    ])
    expect(resultOf(host).digest).toBe(process.arch === 'arm64' ? arm64.digest : amd64.digest)
    const none = await coffer([
      'copy',
      '--platform',
      'linux/s390x',
      `docker://${reg.host}/m/app:all`,
      `oci:${join(work, 'none')}:x`,
    ])
    expect(none.code).toBe(3)
    expect(none.stderr).toContain('linux/amd64, linux/arm64/v8')
  })

  it('inspect lists the platforms of an index', async () => {
    const run = await coffer(['inspect', '--json', `docker://${reg.host}/m/app:all`])
    const info = run.json()[0] as { index: { platform: string }[]; digest: string }
    expect(info.digest).toBe(index.digest)
    expect(info.index.map((m) => m.platform)).toEqual(['linux/amd64', 'linux/arm64/v8'])
  })
})

describe('registry features', () => {
  it('chunked uploads (--upload-chunk-size) send PATCHes with Content-Range and keep the digest', async () => {
    const dir = join(work, 'big')
    // Random bytes: gzip must not shrink the layer below the chunk count we check.
    const payload = randomBytes(300_000)
    const big = await buildSampleImage(dir, 'big', [[{ path: 'blob', content: payload }]])
    const proxy = await startFaultProxy(reg.host)
    try {
      // The second chunk of the layer fails at a gateway: coffer reads the upload status (0-65535
      // kept) and resumes from byte 65536 in the same session.
      // With one blob at a time the PATCHes come in order: config, then the layer's chunks.
      let patches = 0
      proxy.respondOnce(502, {}, 'bad gateway', (m) => m === 'PATCH' && ++patches === 3)
      const run = await coffer([
        'copy',
        '--concurrency',
        '1',
        '--upload-chunk-size',
        '64KiB',
        `oci:${dir}:big`,
        `docker://${proxy.host}/m/chunked:1`,
      ])
      expect(run.stderr).not.toContain('coffer:')
      expect(run.code).toBe(0)
      const ranges = proxy
        .requests()
        .filter((r) => r.method === 'PATCH')
        .map((r) => r.headers['content-range'])
      // The 300 kB layer goes in 64 KiB pieces; the small config in one.
      expect(ranges).toEqual(
        expect.arrayContaining(['0-65535', '65536-131071', '131072-196607', '196608-262143']),
      )
      expect(ranges.filter((r) => r === '65536-131071')).toHaveLength(2)
      const posts = proxy.requests().filter((r) => r.method === 'POST')
      expect(posts).toHaveLength(2) // one session per blob: the resume did not start over
    } finally {
      await proxy.close()
    }
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/m/chunked:1`])
    expect(digestOf(raw.stdout)).toBe(big.digest)
    const tiny = await coffer([
      'copy',
      '--upload-chunk-size',
      '1k',
      `oci:${dir}:big`,
      `docker://${reg.host}/m/chunked:2`,
    ])
    expect(tiny.code).toBe(2)
  })

  it('a dropped upload resumes from the offset the registry reports', async () => {
    const dir = join(work, 'resume-up')
    const payload = randomBytes(2_000_000)
    const img = await buildSampleImage(dir, 'r', [[{ path: 'blob', content: payload }]])
    const proxy = await startFaultProxy(reg.host)
    try {
      // The first PATCH fails at a gateway: coffer asks the registry how far it got and goes on.
      proxy.respondOnce(502, {}, 'bad gateway', (m) => m === 'PATCH')
      const run = await coffer(['copy', '--json', `oci:${dir}:r`, `docker://${proxy.host}/m/resumed:1`])
      expect(run.stderr).not.toContain('coffer:')
      expect(run.code).toBe(0)
      const statusChecks = proxy
        .requests()
        .filter((r) => r.method === 'GET' && r.path.includes('/blobs/uploads/'))
      expect(statusChecks.length).toBeGreaterThanOrEqual(1)
    } finally {
      await proxy.close()
    }
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/m/resumed:1`])
    expect(digestOf(raw.stdout)).toBe(img.digest)
  })

  it('lists tags and finds referrers through the fallback tag on a registry without the referrers API', async () => {
    const ref = parseDockerReference(`${reg.host}/m/app:all`)
    const [endpoint] = pullEndpoints(ref, {})
    try {
      expect((await endpoint!.repository.listTags()).sort()).toEqual(['all'])
      // Push an artifact whose subject is the arm64 image (distribution 2.8 has no referrers API).
      const config = { mediaType: MediaType.OciEmpty, digest: digestOf('{}'), size: 2 }
      const artifact = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.OciManifest,
          artifactType: 'application/vnd.example.sig',
          config,
          layers: [],
          subject: arm64,
          annotations: { note: 'x' },
        }),
      )
      const doc = parseManifestDocument(artifact)
      const dest = openRegistryDestination(parseDockerReference(`${reg.host}/m/app@${doc.digest}`), {})
      const emptySource = {
        name: 'mem',
        getManifest: async () => doc,
        getBlob: async () => (await import('node:stream')).Readable.from([Buffer.from('{}')]),
        getBlobBytes: async () => Buffer.from('{}'),
        close: async () => {},
      }
      await copyImage(emptySource, dest)
      await dest.close()
      const referrers = await endpoint!.repository.listReferrers(arm64.digest)
      expect(referrers).toEqual([
        {
          mediaType: MediaType.OciManifest,
          digest: doc.digest,
          size: artifact.length,
          artifactType: 'application/vnd.example.sig',
          annotations: { note: 'x' },
        },
      ])
      expect(await endpoint!.repository.listReferrers(arm64.digest, { artifactType: 'other' })).toEqual([])
      expect(await endpoint!.repository.listReferrers(amd64.digest)).toEqual([])
      expect((await endpoint!.repository.listTags()).sort()).toEqual([
        'all',
        `sha256-${arm64.digest.slice(7)}`,
      ])
    } finally {
      await endpoint!.repository.registry.close()
    }
  })

  it('coffer list-tags prints every tag (plain and --json), and names a missing repository', async () => {
    for (const tag of ['a', 'b'])
      expect(
        (await coffer(['copy', `oci:${join(work, 'src')}:amd64`, `docker://${reg.host}/m/tags:${tag}`])).code,
      ).toBe(0)
    const plain = await coffer(['list-tags', `docker://${reg.host}/m/tags`])
    expect(plain.code).toBe(0)
    expect(plain.stdout.trim().split('\n').sort()).toEqual(['a', 'b'])
    const json = await coffer(['list-tags', '--json', `docker://${reg.host}/m/tags`])
    // distribution 2.8 lists tags in storage order, not the spec's lexical order; coffer passes it on, as skopeo does.
    const listed = json.json()[0] as { repository: string; tags: string[] }
    expect(listed.repository).toBe(`${reg.host}/m/tags`)
    expect([...listed.tags].sort()).toEqual(['a', 'b'])
    const missing = await coffer(['list-tags', `docker://${reg.host}/m/none`])
    expect(missing.code).toBe(3)
    expect(missing.stderr).toContain(`${reg.host}/m/none`)
    expect((await coffer(['list-tags', `oci:${join(work, 'src')}`])).code).toBe(2)
  })

  it('pulls through a registries.conf mirror first, and falls back to the origin', async () => {
    const mirror = await startRegistry()
    try {
      await skopeo([
        'copy',
        '--all',
        '--dest-tls-verify=false',
        `oci:${join(work, 'src')}:multi`,
        `docker://${mirror.host}/m/app:all`,
      ])
      const conf = join(work, 'registries.conf')
      // The origin is a closed port: only the mirror can serve the pull.
      await writeFile(
        conf,
        `[[registry]]\nprefix = "127.0.0.1:1/m"\nlocation = "127.0.0.1:1/m"\n[[registry.mirror]]\nlocation = "${mirror.host}/m"\n`,
      )
      const run = await coffer([
        'copy',
        '--json',
        '--registries-conf',
        conf,
        '--all',
        'docker://127.0.0.1:1/m/app:all',
        `oci:${join(work, 'mirrored')}:x`,
      ])
      expect(run.stderr).not.toContain('coffer:')
      expect(resultOf(run).digest).toBe(index.digest)
      // A tag the mirror lacks falls back to the origin, which is down: the error names both.
      const miss = await coffer([
        'copy',
        '--retry-times',
        '1',
        '--registries-conf',
        conf,
        'docker://127.0.0.1:1/m/app:nope',
        `oci:${join(work, 'miss')}:x`,
      ])
      expect(miss.code).toBe(8)
      expect(miss.stderr).toContain(mirror.host)
      // And the lib agrees: mirrors come first.
      const source = await openRegistrySource(parseDockerReference('127.0.0.1:1/m/app:all'), {
        registriesConf: parseRegistriesConf(
          `[[registry]]\nprefix = "127.0.0.1:1/m"\nlocation = "127.0.0.1:1/m"\n[[registry.mirror]]\nlocation = "${mirror.host}/m"\n`,
          'inline',
        ),
      })
      expect(source.registryLocation?.host).toBe(mirror.host)
      await source.close()
    } finally {
      await mirror.stop()
    }
  })
})
