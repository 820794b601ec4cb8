import { describe, expect, it } from 'vitest'
import { digestOf } from '../../../lib/oci/digest.js'
import { parseManifestDocument } from '../../../lib/oci/manifest.js'
import { MediaType } from '../../../lib/oci/media-types.js'
import { MAX_MANIFEST_BYTES } from '../../../lib/util/limits.js'

const desc = (n: number) => ({
  mediaType: MediaType.OciLayerGzip,
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  size: 10,
})
const manifest = {
  schemaVersion: 2,
  mediaType: MediaType.OciManifest,
  config: { ...desc(1), mediaType: MediaType.OciConfig },
  layers: [desc(2)],
}
const bytes = (v: unknown) => Buffer.from(JSON.stringify(v))

describe('parseManifestDocument', () => {
  it('parses an OCI manifest and keeps its bytes and digest', () => {
    const b = bytes(manifest)
    const doc = parseManifestDocument(b)
    expect(doc.kind).toBe('manifest')
    expect(doc.digest).toBe(digestOf(b))
    expect(doc.bytes).toBe(b)
  })

  it('guesses the type of a manifest without mediaType from its shape (and a Docker config)', () => {
    const { mediaType: _m, ...bare } = manifest
    expect(parseManifestDocument(bytes(bare)).mediaType).toBe(MediaType.OciManifest)
    const docker = { ...bare, config: { ...bare.config, mediaType: MediaType.DockerConfig } }
    expect(parseManifestDocument(bytes(docker)).mediaType).toBe(MediaType.DockerManifest)
    expect(parseManifestDocument(bytes({ schemaVersion: 2, manifests: [] })).kind).toBe('index')
  })

  it.each([
    [
      'schema 1 body',
      bytes({ schemaVersion: 1, name: 'a', tag: 'b', fsLayers: [] }),
      {},
      'ERR_OCI_SCHEMA1_UNSUPPORTED',
    ],
    [
      'schema 1 content type',
      bytes({}),
      { declaredType: MediaType.DockerSchema1Signed },
      'ERR_OCI_SCHEMA1_UNSUPPORTED',
    ],
    [
      'unknown media type',
      bytes({ ...manifest, mediaType: 'application/vnd.example+json' }),
      {},
      'ERR_OCI_MEDIA_TYPE_UNKNOWN',
    ],
    ['no recognisable shape', bytes({ schemaVersion: 2 }), {}, 'ERR_OCI_MEDIA_TYPE_UNKNOWN'],
    ['not JSON', Buffer.from('{nope'), {}, 'ERR_OCI_MANIFEST_INVALID'],
    ['JSON array', bytes([1]), {}, 'ERR_OCI_MANIFEST_INVALID'],
    ['layers not an array', bytes({ ...manifest, layers: {} }), {}, 'ERR_OCI_MANIFEST_INVALID'],
    [
      'negative size',
      bytes({ ...manifest, layers: [{ ...desc(2), size: -1 }] }),
      {},
      'ERR_OCI_MANIFEST_INVALID',
    ],
    [
      'bad digest',
      bytes({ ...manifest, layers: [{ ...desc(2), digest: 'sha256:xyz' }] }),
      {},
      'ERR_OCI_MANIFEST_INVALID',
    ],
    [
      'type contradicts descriptor',
      bytes(manifest),
      { declaredType: MediaType.DockerManifest },
      'ERR_OCI_MANIFEST_INVALID',
    ],
    [
      'digest mismatch',
      bytes(manifest),
      { expectedDigest: `sha256:${'0'.repeat(64)}` as const },
      'ERR_OCI_DIGEST_MISMATCH',
    ],
    ['over 4 MiB', Buffer.alloc(MAX_MANIFEST_BYTES + 1, 32), {}, 'ERR_OCI_MANIFEST_TOO_LARGE'],
  ])('%s → %s', (_name, b, o, code) => {
    expect(() => parseManifestDocument(b, o)).toThrow(expect.objectContaining({ code }))
  })

  it('accepts a manifest of exactly 4 MiB', () => {
    const base = JSON.stringify({ ...manifest, annotations: { pad: '' } })
    const padded = base.replace('"pad":""', `"pad":"${'x'.repeat(MAX_MANIFEST_BYTES - base.length)}"`)
    expect(Buffer.byteLength(padded)).toBe(MAX_MANIFEST_BYTES)
    expect(parseManifestDocument(Buffer.from(padded)).kind).toBe('manifest')
  })

  it('takes charset parameters on Content-Type in stride', () => {
    expect(
      parseManifestDocument(bytes(manifest), { declaredType: `${MediaType.OciManifest}; charset=utf-8` })
        .kind,
    ).toBe('manifest')
  })
})
