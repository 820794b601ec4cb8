/**
 * The key-provider protocol end to end through the CLI: coffer encrypts and decrypts with
 * `provider:coffer`, and the provider is `coffer keyprovider` itself in cmd mode, configured
 * through OCICRYPT_KEYPROVIDER_CONFIG exactly as skopeo/containerd users configure one.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { COFFER_BIN, coffer } from '../helpers/coffer.js'
import { makeSampleLayout, type SampleImage } from '../helpers/skopeo.js'

let work: string
let sample: SampleImage
let env: NodeJS.ProcessEnv

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-kp-'))
  sample = await makeSampleLayout(join(work, 'src'), 'v1', { layers: 2, layerBytes: 50_000 })
  expect((await coffer(['keys', 'generate', '--type', 'aes', '--out', join(work, 'kek')])).code).toBe(0)
  const config = join(work, 'ocicrypt-keyprovider.json')
  await writeFile(
    config,
    JSON.stringify({
      'key-providers': {
        coffer: {
          cmd: { path: process.execPath, args: [COFFER_BIN, 'keyprovider', '--kek', join(work, 'kek.key')] },
        },
      },
    }),
  )
  env = { OCICRYPT_KEYPROVIDER_CONFIG: config }
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

describe('provider:coffer through coffer keyprovider (cmd mode)', () => {
  it('encrypts and decrypts back to the original layers', async () => {
    const enc = `oci:${join(work, 'enc')}:v1`
    const run = await coffer(
      ['encrypt', '--encryption-key', 'provider:coffer', `oci:${join(work, 'src')}:v1`, enc],
      { env },
    )
    expect(run.stderr).not.toContain('coffer:')
    expect(run.code).toBe(0)
    const index = JSON.parse(await readFile(join(work, 'enc', 'index.json'), 'utf8')) as {
      manifests: { digest: string }[]
    }
    const manifest = JSON.parse(
      await readFile(join(work, 'enc', 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8'),
    ) as {
      layers: { annotations: Record<string, string> }[]
    }
    expect(Object.keys(manifest.layers[0]!.annotations)).toContain(
      'org.opencontainers.image.enc.keys.provider.coffer',
    )

    const out = join(work, 'dec')
    const dec = await coffer(['decrypt', '--decryption-key', 'provider:coffer', enc, `oci:${out}:v1`], {
      env,
    })
    expect(dec.stderr).not.toContain('coffer:')
    expect(dec.code).toBe(0)
    const outIndex = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[]
    }
    const outManifest = JSON.parse(
      await readFile(join(out, 'blobs', 'sha256', outIndex.manifests[0]!.digest.slice(7)), 'utf8'),
    ) as {
      layers: { digest: string }[]
    }
    expect(outManifest.layers.map((l) => l.digest)).toEqual(sample.layers.map((l) => l.digest))
  })

  it('without the provider configured, decryption names the scheme to configure', async () => {
    const run = await coffer(
      [
        'decrypt',
        '--decryption-key',
        'provider:coffer',
        `oci:${join(work, 'enc')}:v1`,
        `oci:${join(work, 'nocfg')}:v1`,
      ],
      {
        env: { OCICRYPT_KEYPROVIDER_CONFIG: join(work, 'missing.json') },
      },
    )
    expect(run.code).toBe(2)
    expect(run.stderr).toContain('key provider "coffer" is not configured')
  })

  it('another KEK cannot decrypt: the fixed failure, exit 9', async () => {
    expect((await coffer(['keys', 'generate', '--type', 'aes', '--out', join(work, 'other')])).code).toBe(0)
    const config = join(work, 'other.json')
    await writeFile(
      config,
      JSON.stringify({
        'key-providers': {
          coffer: {
            cmd: {
              path: process.execPath,
              args: [COFFER_BIN, 'keyprovider', '--kek', join(work, 'other.key')],
            },
          },
        },
      }),
    )
    const run = await coffer(
      [
        'decrypt',
        '--decryption-key',
        'provider:coffer',
        `oci:${join(work, 'enc')}:v1`,
        `oci:${join(work, 'otherdec')}:v1`,
      ],
      {
        env: { OCICRYPT_KEYPROVIDER_CONFIG: config },
      },
    )
    expect(run.code).toBe(9)
    expect(run.stderr).toContain('coffer: decryption failed [ERR_CRYPT_DECRYPT_FAILED]')
  })
})

describe('kbs:/// keys with a local KEK (the build side of a KBS-held key)', () => {
  it('encrypts for kbs:///repo/type/tag with --kek; decrypts with the same URI and KEK; inspect names the URI', async () => {
    const enc = `oci:${join(work, 'kbs-enc')}:v1`
    const uri = 'kbs:///default/image-kek/app'
    const run = await coffer([
      'encrypt',
      '--encryption-key',
      uri,
      '--kek',
      join(work, 'kek.key'),
      `oci:${join(work, 'src')}:v1`,
      enc,
    ])
    expect(run.stderr).not.toContain('coffer:')
    expect(run.code).toBe(0)
    const info = await coffer(['inspect', enc])
    expect(info.stdout).toContain(`encrypted for provider.attestation-agent: ${uri} (KBS)`)
    const out = join(work, 'kbs-dec')
    const dec = await coffer([
      'decrypt',
      '--decryption-key',
      uri,
      '--kek',
      join(work, 'kek.key'),
      enc,
      `oci:${out}:v1`,
    ])
    expect(dec.code).toBe(0)
    const noKek = await coffer([
      'encrypt',
      '--encryption-key',
      uri,
      `oci:${join(work, 'src')}:v1`,
      `oci:${join(work, 'kbs-nokek')}:v1`,
    ])
    expect(noKek.code).toBe(2)
    expect(noKek.stderr).toContain('--kek')
    const badUri = await coffer([
      'encrypt',
      '--encryption-key',
      'kbs:///only/two',
      '--kek',
      join(work, 'kek.key'),
      `oci:${join(work, 'src')}:v1`,
      `oci:${join(work, 'kbs-bad')}:v1`,
    ])
    expect(badUri.stderr).toContain('ERR_KBS_RESOURCE_URI_INVALID')
  })
})
