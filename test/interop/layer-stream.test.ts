/**
 * Layers as the guest reads them (the stage workers' LayerChecker): gzip, zstd and
 * skopeo-encrypted (jwe) layers come out as tars hashing to the config's diff_ids; tampered blobs,
 * wrong diff_ids and missing or wrong keys fail with coded errors.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '../../lib/crypt/keys.js'
import type { DecryptOptions } from '../../lib/crypt/decrypt-step.js'
import { LayerChecker, layerChecks } from '../../lib/image/layer-checks.js'
import { layerDecryption } from '../../lib/image/layer-stream.js'
import type { Digest } from '../../lib/oci/digest.js'
import { parseImageName } from '../../lib/oci/image-name.js'
import { openImageSource } from '../../lib/oci/open-image.js'
import type { ImageSource } from '../../lib/oci/image-transport.js'
import type { Descriptor } from '../../lib/oci/schemas.js'
import { keyWrappers } from '../../plugins/index.js'
import { makeSampleLayout, skopeo, type SampleImage } from '../helpers/skopeo.js'

const run = promisify(execFile)

/**
 * The layer's blob through the checks a pull's stage worker runs (`LayerChecker`, fed in the
 * slices it asks for), with the diff_id checked over the tar; the tar's digest.
 */
async function tarDigest(
  source: ImageSource,
  desc: Descriptor,
  diffId: string,
  o: { decrypt?: DecryptOptions } = {},
): Promise<string> {
  const checker = new LayerChecker(
    layerChecks(desc, await layerDecryption(desc, o.decrypt, {}), diffId as Digest),
  )
  const hash = createHash('sha256')
  const emit = (tar: Buffer): void => void hash.update(tar)
  for await (const chunk of await source.getBlob(desc, {}))
    for (let at = 0; at < (chunk as Buffer).length;) {
      const n = Math.min(checker.sliceBytes, (chunk as Buffer).length - at)
      checker.write((chunk as Buffer).subarray(at, at + n), emit)
      at += n
    }
  checker.end(emit)
  return `sha256:${hash.digest('hex')}`
}

async function manifestLayers(source: ImageSource): Promise<Descriptor[]> {
  const doc = await source.getManifest()
  if (doc.kind !== 'manifest') throw new Error('expected a manifest')
  return doc.manifest.layers
}

describe('layer checks (LayerChecker) on real layers', () => {
  let work: string
  let image: SampleImage
  let pem: { privatePem: string; publicPem: string }
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-layer-stream-'))
    image = await makeSampleLayout(join(work, 'plain'), 'v1', { layers: 2, layerBytes: 300_000 })
    pem = await generateKeyPair('ec', { curve: 'P-256' })
    await writeFile(join(work, 'k.pub'), pem.publicPem)
    await skopeo([
      'copy',
      '--encryption-key',
      `jwe:${join(work, 'k.pub')}`,
      `oci:${join(work, 'plain')}:v1`,
      `oci:${join(work, 'enc')}:v1`,
    ])
  }, 60_000)
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('gzip layers come out as the tars of the config diff_ids', async () => {
    const src = await openImageSource(parseImageName(`oci:${join(work, 'plain')}:v1`), {})
    try {
      for (const [i, l] of image.layers.entries())
        expect(await tarDigest(src, (await manifestLayers(src))[i]!, l.diffId)).toBe(l.diffId)
    } finally {
      await src.close()
    }
  })

  it('skopeo-encrypted layers decrypt (HMAC checked) to the same tars; without or with the wrong key they fail', async () => {
    const src = await openImageSource(parseImageName(`oci:${join(work, 'enc')}:v1`), {})
    try {
      const layers = await manifestLayers(src)
      expect(layers[0]!.mediaType).toMatch(/\+encrypted$/)
      const decrypt = {
        decrypt: {
          wrappers: keyWrappers(),
          config: { privkeys: [Buffer.from(pem.privatePem)], privkeysPasswords: [Buffer.alloc(0)] },
        },
      }
      for (const [i, l] of image.layers.entries())
        expect(await tarDigest(src, layers[i]!, l.diffId, decrypt)).toBe(l.diffId)
      await expect(tarDigest(src, layers[0]!, image.layers[0]!.diffId)).rejects.toMatchObject({
        code: 'ERR_CRYPT_NO_KEY',
      })
      const other = await generateKeyPair('ec', { curve: 'P-256' })
      await expect(
        tarDigest(src, layers[0]!, image.layers[0]!.diffId, {
          decrypt: {
            wrappers: keyWrappers(),
            config: { privkeys: [Buffer.from(other.privatePem)], privkeysPasswords: [Buffer.alloc(0)] },
          },
        }),
      ).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_CRYPT_/) })
    } finally {
      await src.close()
    }
  })

  it('zstd layers (zstd CLI) decode to the same tar', async () => {
    const layout = join(work, 'plain')
    const gz = await readFile(join(layout, 'blobs', 'sha256', image.layers[0]!.digest.slice(7)))
    await writeFile(join(work, 'layer.tar'), gunzipSync(gz))
    await run('zstd', ['-q', '-f', '-19', join(work, 'layer.tar'), '-o', join(work, 'layer.tar.zst')])
    const zst = await readFile(join(work, 'layer.tar.zst'))
    const digest = `sha256:${createHash('sha256').update(zst).digest('hex')}`
    await writeFile(join(layout, 'blobs', 'sha256', digest.slice(7)), zst)
    const src = await openImageSource(parseImageName(`oci:${layout}:v1`), {})
    try {
      const desc: Descriptor = {
        mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd',
        digest: digest as Digest,
        size: zst.length,
      }
      expect(await tarDigest(src, desc, image.layers[0]!.diffId)).toBe(image.layers[0]!.diffId)
    } finally {
      await src.close()
    }
  })

  it('a tampered blob or a wrong diff_id fails with a coded error', async () => {
    const src = await openImageSource(parseImageName(`oci:${join(work, 'plain')}:v1`), {})
    try {
      const layers = await manifestLayers(src)
      await expect(tarDigest(src, layers[0]!, image.layers[1]!.diffId)).rejects.toMatchObject({
        code: 'ERR_OCI_DIGEST_MISMATCH',
      })
      const path = join(work, 'plain', 'blobs', 'sha256', layers[1]!.digest.slice(7))
      const blob = await readFile(path)
      blob[Math.floor(blob.length / 2)]! ^= 0x01
      await writeFile(path, blob)
      await expect(tarDigest(src, layers[1]!, image.layers[1]!.diffId)).rejects.toMatchObject({
        code: expect.stringMatching(/^ERR_OCI_(DIGEST_MISMATCH|LAYER_INVALID)$/),
      })
    } finally {
      await src.close()
    }
  })
})
