/**
 * Faults and hostile answers between coffer and a real registry, injected by a TCP proxy: dropped
 * connections, transient errors, tampered blobs, oversized and unsupported manifests.
 */
import { readdir, readFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { MAX_MANIFEST_BYTES } from '../../lib/util/limits.js'
import { coffer, resultOf } from '../helpers/coffer.js'
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { makeSampleLayout, skopeo, type SampleImage } from '../helpers/skopeo.js'

let work: string
let reg: TestRegistry
let proxy: FaultProxy
let sample: SampleImage
const isBlobGet = (digest: string) => (method: string, path: string) =>
  method === 'GET' && path.endsWith(`/blobs/${digest}`)
const isManifestGet = (method: string, path: string) => method === 'GET' && path.includes('/manifests/')

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-faults-'))
  sample = await makeSampleLayout(join(work, 'src'), 'v1', { layers: 2, layerBytes: 2_000_000 })
  reg = await startRegistry()
  await skopeo([
    'copy',
    '--dest-tls-verify=false',
    `oci:${join(work, 'src')}:v1`,
    `docker://${reg.host}/f/app:1`,
  ])
  proxy = await startFaultProxy(reg.host)
})
afterAll(async () => {
  await proxy?.close()
  await reg?.stop()
  await rm(work, { recursive: true, force: true })
})
let n = 0
const fresh = () => join(work, `out-${++n}`)

describe('transient failures', () => {
  it('a connection dropped mid-blob is resumed with Range and the blob verified', async () => {
    const layer = sample.layers[0]!
    proxy.dropAfterBytes(300_000, 2, isBlobGet(layer.digest))
    const out = fresh()
    const run = await coffer(['copy', '--json', `docker://${proxy.host}/f/app:1`, `oci:${out}:x`])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(resultOf(run).digest).toBe(sample.manifest.digest)
    const gets = proxy.requests().filter((r) => isBlobGet(layer.digest)(r.method, r.path))
    expect(gets.map((r) => r.headers.range)).toEqual([undefined, 'bytes=300000-', 'bytes=600000-'])
    const copied = await readFile(join(out, 'blobs', 'sha256', layer.digest.slice(7)))
    expect(copied.equals(await readFile(join(work, 'src', 'blobs', 'sha256', layer.digest.slice(7))))).toBe(
      true,
    )
  })

  it('503 and 429 (with Retry-After) are retried', async () => {
    proxy.respondOnce(503, {}, 'busy', isManifestGet)
    proxy.respondOnce(
      429,
      { 'retry-after': '1' },
      '{"errors":[{"code":"TOOMANYREQUESTS"}]}',
      isBlobGet(sample.config.digest),
    )
    const run = await coffer(['copy', '--json', `docker://${proxy.host}/f/app:1`, `oci:${fresh()}:x`])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    const retries = run.json().filter((e) => e.event === 'retry')
    expect(retries.map((e) => e.reason)).toEqual(expect.arrayContaining(['HTTP 503', 'HTTP 429']))
  })

  it('gives up after --retry-times with the registry named', async () => {
    for (let i = 0; i < 3; i++) proxy.respondOnce(503, {}, 'down', isManifestGet)
    const run = await coffer([
      'copy',
      '--retry-times',
      '2',
      `docker://${proxy.host}/f/app:1`,
      `oci:${fresh()}:x`,
    ])
    expect(run.code).toBe(8)
    expect(run.stderr).toContain('ERR_REGISTRY_SERVER')
    expect(run.stderr).toContain(proxy.host)
    proxy.respondOnce(200, {}, '', () => false) // leave no canned answer behind for the next test
  })

  it('an unreachable registry is a clear error, exit 8', async () => {
    const run = await coffer(['copy', '--retry-times', '1', 'docker://127.0.0.1:1/x/y:1', `oci:${fresh()}:x`])
    expect(run.code).toBe(8)
    expect(run.stderr).toMatch(/cannot reach registry 127\.0\.0\.1:1.*\[ERR_REGISTRY_UNREACHABLE\]/)
  })
})

describe('tampered content is never stored', () => {
  afterEach(() => {
    // Drain canned answers a failing test may have left.
  })

  it('a blob whose bytes do not match its digest: error, exit 9, destination index untouched', async () => {
    const out = fresh()
    // A layout that already holds an image: its index.json must be byte-identical afterwards.
    const first = await coffer(['copy', `docker://${reg.host}/f/app:1`, `oci:${out}:keep`])
    expect(first.code).toBe(0)
    const indexBefore = await readFile(join(out, 'index.json'))
    const blobsBefore = await readdir(join(out, 'blobs', 'sha256'))
    // Push a second, different image whose layer the proxy replaces with same-length garbage.
    const other = await makeSampleLayout(join(work, 'other'), 'v2', { layers: 1, layerBytes: 100_000 })
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      `oci:${join(work, 'other')}:v2`,
      `docker://${reg.host}/f/other:2`,
    ])
    const layer = other.layers[0]!
    proxy.respondOnce(
      200,
      { 'content-type': 'application/octet-stream', 'content-length': String(layer.size) },
      'x'.repeat(layer.size),
      isBlobGet(layer.digest),
    )
    const run = await coffer(['copy', `docker://${proxy.host}/f/other:2`, `oci:${out}:new`])
    expect(run.code).toBe(9)
    expect(run.stderr).toContain('ERR_OCI_DIGEST_MISMATCH')
    expect((await readFile(join(out, 'index.json'))).equals(indexBefore)).toBe(true)
    const blobsAfter = await readdir(join(out, 'blobs', 'sha256'))
    expect(blobsAfter).not.toContain(layer.digest.slice(7))
    expect(blobsAfter.filter((b) => b.startsWith('.tmp-'))).toEqual([])
    expect(blobsAfter.length).toBeLessThanOrEqual(blobsBefore.length + 2)
  })

  it('a corrupted blob in a source layout is refused by the registry: exit 9, no tag pushed', async () => {
    const src = join(work, 'corrupt')
    const img = await makeSampleLayout(src, 'v1', { layers: 1, layerBytes: 50_000 })
    const path = join(src, 'blobs', 'sha256', img.layers[0]!.digest.slice(7))
    const bytes = await readFile(path)
    bytes[100] = bytes[100]! ^ 0xff
    await writeFile(path, bytes)
    const run = await coffer(['copy', `oci:${src}:v1`, `docker://${reg.host}/f/corrupt:1`])
    expect(run.code).toBe(9)
    expect(run.stderr).toContain('ERR_OCI_DIGEST_MISMATCH')
    const check = await coffer(['inspect', `docker://${reg.host}/f/corrupt:1`])
    expect(check.code).toBe(3)
  })

  it('a registry that serves other bytes for a manifest digest is caught', async () => {
    const other = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: sample.config,
      layers: [],
    })
    proxy.respondOnce(
      200,
      { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      other,
      isManifestGet,
    )
    const run = await coffer([
      'copy',
      `docker://${proxy.host}/f/app@${sample.manifest.digest}`,
      `oci:${fresh()}:x`,
    ])
    expect(run.code).toBe(9)
    expect(run.stderr).toContain('ERR_OCI_DIGEST_MISMATCH')
  })

  it('a Docker-Content-Digest header that contradicts the body is caught on a tag pull', async () => {
    const raw = await readFile(join(work, 'src', 'blobs', 'sha256', sample.manifest.digest.slice(7)), 'utf8')
    proxy.respondOnce(
      200,
      {
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'docker-content-digest': `sha256:${'0'.repeat(64)}`,
      },
      raw,
      isManifestGet,
    )
    const run = await coffer(['copy', `docker://${proxy.host}/f/app:1`, `oci:${fresh()}:x`])
    expect(run.code).toBe(9)
  })
})

describe('bad input gets a clear error, a stable code and a non-zero exit', () => {
  const manifestAnswer = (contentType: string, body: string) =>
    proxy.respondOnce(200, { 'content-type': contentType }, body, isManifestGet)

  it.each([
    ['docker://Upper/Case', 2, 'ERR_OCI_REFERENCE_INVALID'],
    ['docker://host/app:tag@sha256:abc', 2, 'ERR_OCI_REFERENCE_INVALID'],
    ['docker:alpine', 2, 'ERR_OCI_REFERENCE_INVALID'],
    ['registry.example/app', 2, 'ERR_OCI_TRANSPORT_UNKNOWN'],
    ['oci:', 2, 'ERR_OCI_REFERENCE_INVALID'],
    ['oci:/nonexistent/layout:tag', 3, 'ERR_OCI_LAYOUT_NOT_FOUND'],
  ])('copy %s → exit %i %s', async (src, code, errCode) => {
    const run = await coffer(['copy', src, `oci:${fresh()}:x`])
    expect(run.code).toBe(code)
    expect(run.stderr).toContain(errCode)
  })

  it('a manifest over 4 MiB: ERR_OCI_MANIFEST_TOO_LARGE, exit 10', async () => {
    const huge = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: sample.config,
      layers: [],
      annotations: { pad: 'x'.repeat(MAX_MANIFEST_BYTES) },
    })
    manifestAnswer('application/vnd.oci.image.manifest.v1+json', huge)
    const run = await coffer(['copy', `docker://${proxy.host}/f/app:1`, `oci:${fresh()}:x`])
    expect(run.code).toBe(10)
    expect(run.stderr).toContain('ERR_OCI_MANIFEST_TOO_LARGE')
  })

  it('an unknown media type: ERR_OCI_MEDIA_TYPE_UNKNOWN, exit 11', async () => {
    manifestAnswer(
      'application/vnd.example.thing+json',
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.thing+json' }),
    )
    const run = await coffer(['copy', `docker://${proxy.host}/f/app:1`, `oci:${fresh()}:x`])
    expect(run.code).toBe(11)
    expect(run.stderr).toContain('ERR_OCI_MEDIA_TYPE_UNKNOWN')
  })

  it('a Docker schema 1 manifest: ERR_OCI_SCHEMA1_UNSUPPORTED, exit 11', async () => {
    manifestAnswer(
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
      JSON.stringify({
        schemaVersion: 1,
        name: 'f/app',
        tag: '1',
        fsLayers: [],
        history: [],
        signatures: [],
      }),
    )
    const run = await coffer(['copy', `docker://${proxy.host}/f/app:1`, `oci:${fresh()}:x`])
    expect(run.code).toBe(11)
    expect(run.stderr).toContain('ERR_OCI_SCHEMA1_UNSUPPORTED')
  })

  it('a manifest that is not JSON: ERR_OCI_MANIFEST_INVALID, exit 2', async () => {
    manifestAnswer('application/vnd.oci.image.manifest.v1+json', '<html>not a registry</html>')
    const run = await coffer(['copy', `docker://${proxy.host}/f/app:1`, `oci:${fresh()}:x`])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('ERR_OCI_MANIFEST_INVALID')
  })

  it('a missing image: exit 3 naming the repository', async () => {
    const run = await coffer(['copy', `docker://${reg.host}/f/nope:1`, `oci:${fresh()}:x`])
    expect(run.code).toBe(3)
    expect(run.stderr).toContain(`${reg.host}/f/nope`)
  })

  it('--json errors are machine-readable too', async () => {
    const run = await coffer(['copy', '--json', 'docker://Bad', `oci:${fresh()}:x`])
    expect(run.code).toBe(2)
    expect(run.json().at(-1)).toMatchObject({
      error: { code: 'ERR_OCI_REFERENCE_INVALID', class: 'invalid_argument' },
    })
  })

  it('flag mistakes are usage errors', async () => {
    const both = await coffer([
      'copy',
      '--all',
      '--platform',
      'linux/amd64',
      `docker://${reg.host}/f/app:1`,
      `oci:${fresh()}:x`,
    ])
    expect(both.code).toBe(2)
    const conc = await coffer([
      'copy',
      '--concurrency',
      '0',
      `docker://${reg.host}/f/app:1`,
      `oci:${fresh()}:x`,
    ])
    expect(conc.code).toBe(2)
    expect(conc.stderr).toContain('--concurrency')
    const plat = await coffer([
      'copy',
      '--platform',
      'linux',
      `docker://${reg.host}/f/app:1`,
      `oci:${fresh()}:x`,
    ])
    expect(plat.stderr).toContain('ERR_OCI_PLATFORM_INVALID')
  })
})
