/**
 * coffer encrypt / decrypt against real skopeo (ocicrypt): images coffer encrypts decrypt in
 * skopeo and the other way round, with RSA and EC recipients; tampering and wrong keys are refused
 * and nothing is written.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { digestOf } from '../../lib/oci/digest.js'
import { coffer } from '../helpers/coffer.js'
import { editedLayoutCopy, type Manifest as LayoutManifest } from '../helpers/encrypted-layout.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { makeSampleLayout, skopeo, type SampleImage } from '../helpers/skopeo.js'

const sh = promisify(execFile)
let work: string
let sample: SampleImage
let reg: TestRegistry
const src = () => `oci:${join(work, 'src')}:v1`

interface Manifest {
  mediaType?: string
  config: { digest: string; mediaType: string }
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[]
}
async function manifestOf(image: string, extra: string[] = []): Promise<Manifest> {
  return JSON.parse((await skopeo(['inspect', '--raw', ...extra, image])).stdout) as Manifest
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-enc-'))
  sample = await makeSampleLayout(join(work, 'src'), 'v1', { layers: 3, layerBytes: 200_000 })
  for (const [name, type] of [
    ['rsa', 'rsa'],
    ['ec', 'ec'],
    ['other', 'rsa'],
  ] as const) {
    const run = await coffer(['keys', 'generate', '--type', type, '--out', join(work, name)])
    expect(run.code).toBe(0)
  }
  reg = await startRegistry()
})
afterAll(async () => {
  await reg?.stop()
  await rm(work, { recursive: true, force: true })
})

describe('coffer encrypts, skopeo decrypts', () => {
  it.each(['rsa', 'ec'])(
    '%s recipient: every layer encrypted, config unchanged; skopeo gets the original layers back',
    async (key) => {
      const enc = `oci:${join(work, `enc-${key}`)}:v1`
      const run = await coffer(['encrypt', '--encryption-key', `jwe:${join(work, `${key}.pub`)}`, src(), enc])
      expect(run.stderr).not.toContain('coffer:')
      expect(run.code).toBe(0)
      const m = await manifestOf(enc)
      expect(m.config.digest).toBe(sample.config.digest)
      expect(m.layers.map((l) => l.mediaType)).toEqual(
        Array(3).fill('application/vnd.oci.image.layer.v1.tar+gzip+encrypted'),
      )
      for (const [i, l] of m.layers.entries()) {
        expect(l.digest).not.toBe(sample.layers[i]!.digest)
        expect(l.size).toBe(sample.layers[i]!.size)
        expect(Object.keys(l.annotations ?? {}).sort()).toEqual([
          'org.opencontainers.image.enc.keys.jwe',
          'org.opencontainers.image.enc.pubopts',
        ])
      }
      const dec = `oci:${join(work, `skopeo-dec-${key}`)}:v1`
      await skopeo(['copy', '--decryption-key', join(work, `${key}.key`), enc, dec])
      const back = await manifestOf(dec)
      expect(back.layers.map((l) => [l.mediaType, l.digest])).toEqual(
        sample.layers.map((l) => [l.mediaType, l.digest]),
      )
    },
  )

  it('two recipients: either private key decrypts in skopeo; a third does not', async () => {
    const enc = `oci:${join(work, 'enc-two')}:v1`
    const run = await coffer([
      'encrypt',
      '--encryption-key',
      `jwe:${join(work, 'rsa.pub')}`,
      '--encryption-key',
      `jwe:${join(work, 'ec.pub')}`,
      src(),
      enc,
    ])
    expect(run.code).toBe(0)
    for (const key of ['rsa', 'ec']) {
      const dec = `oci:${join(work, `two-dec-${key}`)}:v1`
      await skopeo(['copy', '--decryption-key', join(work, `${key}.key`), enc, dec])
      expect((await manifestOf(dec)).layers.map((l) => l.digest)).toEqual(sample.layers.map((l) => l.digest))
    }
    await expect(
      skopeo([
        'copy',
        '--decryption-key',
        join(work, 'other.key'),
        enc,
        `oci:${join(work, 'two-dec-other')}:v1`,
      ]),
    ).rejects.toThrow()
  })

  it('--encrypt-layer -1 encrypts only the top layer (skopeo index syntax)', async () => {
    const enc = `oci:${join(work, 'enc-top')}:v1`
    const run = await coffer([
      'encrypt',
      '--encrypt-layer',
      '-1',
      '--encryption-key',
      `jwe:${join(work, 'rsa.pub')}`,
      src(),
      enc,
    ])
    expect(run.code).toBe(0)
    const m = await manifestOf(enc)
    expect(m.layers.map((l) => l.mediaType.endsWith('+encrypted'))).toEqual([false, false, true])
    expect(m.layers.slice(0, 2).map((l) => l.digest)).toEqual(sample.layers.slice(0, 2).map((l) => l.digest))
    const bad = await coffer([
      'encrypt',
      '--encrypt-layer',
      '7',
      '--encryption-key',
      `jwe:${join(work, 'rsa.pub')}`,
      src(),
      `oci:${join(work, 'enc-bad')}:v1`,
    ])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('layer index 7 out of range (3 layers exist)')
  })
})

describe('skopeo encrypts, coffer decrypts', () => {
  it.each(['rsa', 'ec'])('%s: coffer decrypt restores the original layers, byte for byte', async (key) => {
    const enc = `oci:${join(work, `sk-enc-${key}`)}:v1`
    await skopeo(['copy', '--encryption-key', `jwe:${join(work, `${key}.pub`)}`, src(), enc])
    const out = join(work, `co-dec-${key}`)
    const run = await coffer(['decrypt', '--decryption-key', join(work, `${key}.key`), enc, `oci:${out}:v1`])
    expect(run.stderr).not.toContain('coffer:')
    expect(run.code).toBe(0)
    const m = await manifestOf(`oci:${out}:v1`)
    expect(m.layers.map((l) => [l.mediaType, l.digest, l.annotations])).toEqual(
      sample.layers.map((l) => [l.mediaType, l.digest, undefined]),
    )
    for (const l of sample.layers) {
      const a = await readFile(join(out, 'blobs', 'sha256', l.digest.slice(7)))
      expect(digestOf(a)).toBe(l.digest)
    }
    // umoci unpacks what coffer decrypted.
    await sh('umoci', ['unpack', '--rootless', '--image', `${out}:v1`, join(work, `bundle-${key}`)])
  })

  it('through a registry: skopeo pushes encrypted, coffer pulls and decrypts', async () => {
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--encryption-key',
      `jwe:${join(work, 'ec.pub')}`,
      src(),
      `docker://${reg.host}/enc/app:1`,
    ])
    const out = join(work, 'reg-dec')
    const run = await coffer([
      'copy',
      '--decryption-key',
      join(work, 'ec.key'),
      `docker://${reg.host}/enc/app:1`,
      `oci:${out}:v1`,
    ])
    expect(run.code).toBe(0)
    expect((await manifestOf(`oci:${out}:v1`)).layers.map((l) => l.digest)).toEqual(
      sample.layers.map((l) => l.digest),
    )
  })
})

describe('pkcs7 recipients (x509 certificates)', () => {
  beforeAll(async () => {
    await sh('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(work, 'cert.key'),
      '-out',
      join(work, 'cert.pem'),
      '-subj',
      '/CN=coffer-test',
      '-days',
      '2',
    ])
  })

  it('coffer encrypts for a certificate; skopeo decrypts with key and certificate', async () => {
    const enc = `oci:${join(work, 'p7-enc')}:v1`
    const run = await coffer(['encrypt', '--encryption-key', `pkcs7:${join(work, 'cert.pem')}`, src(), enc])
    expect(run.stderr).not.toContain('coffer:')
    expect(run.code).toBe(0)
    const m = await manifestOf(enc)
    expect(Object.keys(m.layers[0]!.annotations ?? {})).toContain('org.opencontainers.image.enc.keys.pkcs7')
    const dec = `oci:${join(work, 'p7-sk-dec')}:v1`
    await skopeo([
      'copy',
      '--decryption-key',
      join(work, 'cert.key'),
      '--decryption-key',
      join(work, 'cert.pem'),
      enc,
      dec,
    ])
    expect((await manifestOf(dec)).layers.map((l) => l.digest)).toEqual(sample.layers.map((l) => l.digest))
  })

  it('skopeo encrypts for a certificate; coffer decrypts, and needs the certificate too', async () => {
    const enc = `oci:${join(work, 'p7-sk-enc')}:v1`
    await skopeo(['copy', '--encryption-key', `pkcs7:${join(work, 'cert.pem')}`, src(), enc])
    const out = join(work, 'p7-co-dec')
    const run = await coffer([
      'decrypt',
      '--decryption-key',
      join(work, 'cert.key'),
      '--decryption-key',
      join(work, 'cert.pem'),
      enc,
      `oci:${out}:v1`,
    ])
    expect(run.stderr).not.toContain('coffer:')
    expect(run.code).toBe(0)
    expect((await manifestOf(`oci:${out}:v1`)).layers.map((l) => l.digest)).toEqual(
      sample.layers.map((l) => l.digest),
    )
    const keyOnly = await coffer([
      'decrypt',
      '--decryption-key',
      join(work, 'cert.key'),
      enc,
      `oci:${join(work, 'p7-keyonly')}:v1`,
    ])
    expect(keyOnly.code).not.toBe(0)
  })

  it('one image for a jwe and a pkcs7 recipient: either decrypts it', async () => {
    const enc = `oci:${join(work, 'mixed-enc')}:v1`
    const run = await coffer([
      'encrypt',
      '--encryption-key',
      `jwe:${join(work, 'ec.pub')}`,
      '--encryption-key',
      `pkcs7:${join(work, 'cert.pem')}`,
      src(),
      enc,
    ])
    expect(run.code).toBe(0)
    await skopeo(['copy', '--decryption-key', join(work, 'ec.key'), enc, `oci:${join(work, 'mixed-jwe')}:v1`])
    await skopeo([
      'copy',
      '--decryption-key',
      join(work, 'cert.key'),
      '--decryption-key',
      join(work, 'cert.pem'),
      enc,
      `oci:${join(work, 'mixed-p7')}:v1`,
    ])
    const out = join(work, 'mixed-co')
    expect(
      (
        await coffer([
          'decrypt',
          '--decryption-key',
          join(work, 'cert.key'),
          '--decryption-key',
          join(work, 'cert.pem'),
          enc,
          `oci:${out}:v1`,
        ])
      ).code,
    ).toBe(0)
  })
})

describe('pgp recipients (OpenPGP keys made by gpg)', () => {
  const gnupg = () => join(work, 'gnupg')
  const gpg = (args: string[]) =>
    sh('gpg', ['--batch', '--homedir', gnupg(), ...args], { encoding: 'buffer' })
  beforeAll(async () => {
    await sh('mkdir', ['-m', '0700', '-p', gnupg()])
    await gpg([
      '--passphrase',
      '',
      '--quick-gen-key',
      'Coffer Test <pgp@coffer.test>',
      'rsa3072',
      'encr',
      'never',
    ])
    await writeFile(join(work, 'pgp.asc'), (await gpg(['--armor', '--export', 'pgp@coffer.test'])).stdout)
    await writeFile(
      join(work, 'pgp-secret.gpg'),
      (await gpg(['--export-secret-keys', 'pgp@coffer.test'])).stdout,
    )
  })

  it('coffer encrypts for a public key file; skopeo decrypts with the secret key', async () => {
    const enc = `oci:${join(work, 'pgp-enc')}:v1`
    const run = await coffer(['encrypt', '--encryption-key', `pgp:${join(work, 'pgp.asc')}`, src(), enc])
    expect(run.stderr).not.toContain('coffer:')
    expect(run.code).toBe(0)
    const dec = `oci:${join(work, 'pgp-sk-dec')}:v1`
    await skopeo(['copy', '--decryption-key', join(work, 'pgp-secret.gpg'), enc, dec])
    expect((await manifestOf(dec)).layers.map((l) => l.digest)).toEqual(sample.layers.map((l) => l.digest))
  })

  it('skopeo encrypts for pgp:<email> from the gpg keyring; coffer decrypts with the exported secret key', async () => {
    const enc = `oci:${join(work, 'pgp-sk-enc')}:v1`
    await skopeo(['copy', '--encryption-key', 'pgp:pgp@coffer.test', src(), enc], {
      env: { GNUPGHOME: gnupg() },
    })
    const out = join(work, 'pgp-co-dec')
    const run = await coffer([
      'decrypt',
      '--decryption-key',
      join(work, 'pgp-secret.gpg'),
      enc,
      `oci:${out}:v1`,
    ])
    expect(run.stderr).not.toContain('coffer:')
    expect(run.code).toBe(0)
    expect((await manifestOf(`oci:${out}:v1`)).layers.map((l) => l.digest)).toEqual(
      sample.layers.map((l) => l.digest),
    )
  })
})

describe('refusals', () => {
  it('the wrong key: ERR_CRYPT_DECRYPT_FAILED, exit 9, nothing written', async () => {
    const out = join(work, 'wrong')
    const run = await coffer([
      'decrypt',
      '--decryption-key',
      join(work, 'other.key'),
      `oci:${join(work, 'enc-rsa')}:v1`,
      `oci:${out}:v1`,
    ])
    expect(run.code).toBe(9)
    expect(run.stderr).toContain('coffer: decryption failed [ERR_CRYPT_DECRYPT_FAILED]')
    await expect(
      readFile(join(out, 'index.json'), 'utf8').then((s) => JSON.parse(s).manifests),
    ).resolves.toEqual([])
  })

  /**
   * An attacker who can rewrite the layout: copies the encrypted image, lets `change` edit the
   * manifest and layer bytes, and fixes every digest above them, so only the crypto can object.
   */
  async function tamperedCopy(
    name: string,
    change: (
      m: LayoutManifest,
      blob: (d: string) => Promise<Buffer>,
      put: (b: Buffer) => Promise<string>,
    ) => Promise<void>,
  ): Promise<string> {
    const dir = join(work, name)
    await editedLayoutCopy(join(work, 'enc-rsa'), dir, (m, blobs) => change(m, blobs.read, blobs.put))
    return `oci:${dir}:v1`
  }

  async function expectRefused(image: string, out: string): Promise<void> {
    const run = await coffer([
      'decrypt',
      '--decryption-key',
      join(work, 'rsa.key'),
      image,
      `oci:${join(work, out)}:v1`,
    ])
    expect(run.code).toBe(9)
    expect(run.stderr).toContain('coffer: decryption failed [ERR_CRYPT_DECRYPT_FAILED]')
    const written = JSON.parse(await readFile(join(work, out, 'index.json'), 'utf8')) as {
      manifests: unknown[]
    }
    expect(written.manifests).toEqual([])
    // No plaintext of any layer reached the destination either.
    const blobs = await readdir(join(work, out, 'blobs', 'sha256'))
    for (const l of sample.layers) expect(blobs).not.toContain(l.digest.slice(7))
  }

  it('one flipped ciphertext byte (digests fixed up): the HMAC refuses it, nothing written', async () => {
    const image = await tamperedCopy('tamper-flip', async (m, blob, put) => {
      const bytes = await blob(m.layers[1]!.digest)
      bytes[1000] = bytes[1000]! ^ 0x01
      m.layers[1]!.digest = await put(bytes)
    })
    await expectRefused(image, 'tamper-flip-out')
  })

  it('a truncated layer (size and digest fixed up): refused, nothing written', async () => {
    const image = await tamperedCopy('tamper-trunc', async (m, blob, put) => {
      const bytes = (await blob(m.layers[2]!.digest)).subarray(0, 50_000)
      m.layers[2]!.digest = await put(Buffer.from(bytes))
      m.layers[2]!.size = bytes.length
    })
    await expectRefused(image, 'tamper-trunc-out')
  })

  it('encryption annotations swapped between two layers: refused, nothing written', async () => {
    const image = await tamperedCopy('tamper-swap', async (m) => {
      const [a, b] = [m.layers[0]!, m.layers[1]!]
      ;[a.annotations, b.annotations] = [b.annotations, a.annotations]
    })
    await expectRefused(image, 'tamper-swap-out')
  })

  it('no key at all for an encrypted image: a clear error naming the scheme', async () => {
    const run = await coffer([
      'decrypt',
      '--decryption-key',
      join(work, 'rsa.pub'),
      `oci:${join(work, 'enc-ec')}:v1`,
      `oci:${join(work, 'nokey')}:v1`,
    ])
    expect(run.code).not.toBe(0)
    expect(run.stderr).toMatch(/ERR_CRYPT_(NO_KEY|DECRYPT_FAILED)/)
  })

  it('flag mistakes, as skopeo has them', async () => {
    const both = await coffer([
      'copy',
      '--encryption-key',
      `jwe:${join(work, 'rsa.pub')}`,
      '--decryption-key',
      join(work, 'rsa.key'),
      src(),
      `oci:${join(work, 'x')}:v1`,
    ])
    expect(both.code).toBe(2)
    expect((await coffer(['copy', '--encrypt-layer', '0', src(), `oci:${join(work, 'y')}:v1`])).code).toBe(2)
    expect((await coffer(['encrypt', src(), `oci:${join(work, 'z')}:v1`])).code).toBe(2)
    expect(
      (await coffer(['encrypt', '--encryption-key', 'pkcs11:someone', src(), `oci:${join(work, 'z')}:v1`]))
        .stderr,
    ).toContain('ERR_CRYPT_UNSUPPORTED')
    expect(
      (
        await coffer([
          'encrypt',
          '--encryption-key',
          `jwe:${join(work, 'missing.pub')}`,
          src(),
          `oci:${join(work, 'z')}:v1`,
        ])
      ).code,
    ).toBe(3)
  })
})

describe('a Docker v2s2 image', () => {
  it('becomes an OCI manifest when encrypted (Docker types cannot say +encrypted); the config blob is kept', async () => {
    const docker = `oci:${join(work, 'v2s2')}:v1`
    // skopeo writes a Docker schema 2 manifest into a registry with --format v2s2.
    await skopeo([
      'copy',
      '--format',
      'v2s2',
      '--dest-tls-verify=false',
      src(),
      `docker://${reg.host}/v2s2/app:1`,
    ])
    const dm = await manifestOf(`docker://${reg.host}/v2s2/app:1`, ['--tls-verify=false'])
    expect(dm.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json')
    const run = await coffer([
      'encrypt',
      '--encryption-key',
      `jwe:${join(work, 'ec.pub')}`,
      `docker://${reg.host}/v2s2/app:1`,
      docker,
    ])
    expect(run.code).toBe(0)
    const m = await manifestOf(docker)
    expect(m.mediaType).toBe('application/vnd.oci.image.manifest.v1+json')
    expect(m.config).toMatchObject({
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: dm.config.digest,
    })
    await skopeo([
      'copy',
      '--decryption-key',
      join(work, 'ec.key'),
      docker,
      `oci:${join(work, 'v2s2-dec')}:v1`,
    ])
  })
})
