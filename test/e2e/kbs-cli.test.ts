/**
 * The KBS from the command line, as an operator and a guest use it: `coffer kbs serve` in its own
 * process, the admin commands, `coffer kbs get-resource`, and the whole key flow for an image: a
 * layer key wrapped for kbs:///… with a local KEK at build time, the KEK registered with
 * put-resource, and the image decrypted by a client that attests and fetches the KEK.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { coffer } from '../helpers/coffer.js'
import { spawnKbsServe, type KbsProcess } from '../helpers/kbs.js'
import { KBS_ANNOTATION } from '../../plugins/keywrap/kbs/index.js'
import { expectDecryptedTo } from '../helpers/encrypted-layout.js'
import { makeSampleLayout, type SampleImage } from '../helpers/skopeo.js'

const POLICY = JSON.stringify({
  version: 'coffer.dev/kbs-resource-policy/v1',
  rules: [
    {
      name: 'sample guests get image keys',
      effect: 'allow',
      resources: ['default/image-kek/*'],
      when: 'tee == "sample"',
    },
  ],
})

describe('coffer kbs (CLI)', () => {
  let dir: string
  let kbs: KbsProcess
  let url: string
  let admin: string[]
  let image: SampleImage

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-kbs-cli-'))
    kbs = await spawnKbsServe(dir, POLICY)
    url = kbs.url
    admin = kbs.adminArgs
    image = await makeSampleLayout(join(dir, 'plain'), 'v1')
  }, 60_000)

  afterAll(async () => {
    await kbs?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('build side → KBS → guest side: an image encrypted for kbs:///default/image-kek/app decrypts after attestation', async () => {
    const kek = join(dir, 'app.kek')
    await writeFile(kek, randomBytes(32), { mode: 0o600 })
    const uri = 'kbs:///default/image-kek/app'
    const enc = await coffer([
      'encrypt',
      '--encryption-key',
      uri,
      '--kek',
      kek,
      `oci:${join(dir, 'plain')}:v1`,
      `oci:${join(dir, 'enc')}:v1`,
    ])
    expect(enc.code, enc.stderr).toBe(0)
    // Without the KEK in the KBS the guest gets 404 → not found.
    const early = await coffer([
      'decrypt',
      '--kbs-url',
      url,
      '--attester',
      'sample',
      `oci:${join(dir, 'enc')}:v1`,
      `oci:${join(dir, 'early')}:v1`,
    ])
    expect(early.code, early.stderr).toBe(3)
    const put = await coffer(['kbs', 'put-resource', uri, '--file', kek, ...admin])
    expect(put.code, put.stderr).toBe(0)
    const dec = await coffer([
      'decrypt',
      '--kbs-url',
      url,
      '--attester',
      'sample',
      `oci:${join(dir, 'enc')}:v1`,
      `oci:${join(dir, 'dec')}:v1`,
    ])
    expect(dec.code, dec.stderr).toBe(0)
    expect(dec.stderr).toMatch(/WARNING: using the "sample" attester/)
    await expectDecryptedTo(join(dir, 'dec'), image.layers, KBS_ANNOTATION)
  }, 120_000)

  it('get-resource writes the resource 0600 and refuses to overwrite; --json carries it base64', async () => {
    const value = randomBytes(32)
    await writeFile(join(dir, 'r.bin'), value)
    expect(
      (
        await coffer([
          'kbs',
          'put-resource',
          'kbs:///default/image-kek/r',
          '--file',
          join(dir, 'r.bin'),
          ...admin,
        ])
      ).code,
    ).toBe(0)
    const out = join(dir, 'got.bin')
    const got = await coffer([
      'kbs',
      'get-resource',
      'kbs:///default/image-kek/r',
      '--url',
      url,
      '--attester',
      'sample',
      '--out',
      out,
    ])
    expect(got.code, got.stderr).toBe(0)
    expect(await readFile(out)).toEqual(value)
    expect((await stat(out)).mode & 0o777).toBe(0o600)
    const again = await coffer([
      'kbs',
      'get-resource',
      'kbs:///default/image-kek/r',
      '--url',
      url,
      '--attester',
      'sample',
      '--out',
      out,
    ])
    expect(again.code).toBe(2)
    const json = await coffer([
      'kbs',
      'get-resource',
      'kbs:///default/image-kek/r',
      '--url',
      url,
      '--attester',
      'sample',
      '--json',
    ])
    expect(Buffer.from(json.json()[0]!.base64 as string, 'base64')).toEqual(value)
  }, 60_000)

  it('errors: policy deny 7, missing 3, no TEE 5, wrong admin key 6, bad URI 2, unreachable KBS 8', async () => {
    expect(
      (await coffer(['kbs', 'get-resource', 'kbs:///other/key/x', '--url', url, '--attester', 'sample']))
        .code,
    ).toBe(7)
    expect(
      (
        await coffer([
          'kbs',
          'get-resource',
          'kbs:///default/image-kek/none',
          '--url',
          url,
          '--attester',
          'sample',
        ])
      ).code,
    ).toBe(3)
    const noTee = await coffer(['kbs', 'get-resource', 'kbs:///default/image-kek/r', '--url', url])
    expect(noTee.code).toBe(5)
    expect(noTee.stderr).toMatch(/ERR_ATTEST_NO_TEE/)
    expect((await coffer(['keys', 'generate', '--type', 'ec', '--out', join(dir, 'intruder')])).code).toBe(0)
    const wrong = await coffer([
      'kbs',
      'put-resource',
      'kbs:///default/image-kek/r',
      '--file',
      join(dir, 'r.bin'),
      '--url',
      url,
      '--admin-key',
      join(dir, 'intruder.key'),
    ])
    expect(wrong.code).toBe(6)
    expect(wrong.stderr).toMatch(/AdminAuthAccess/)
    expect(
      (await coffer(['kbs', 'get-resource', 'kbs:///a/b', '--url', url, '--attester', 'sample'])).code,
    ).toBe(2)
    expect(
      (
        await coffer([
          'kbs',
          'get-resource',
          'kbs:///default/image-kek/r',
          '--url',
          'http://127.0.0.1:1',
          '--attester',
          'sample',
        ])
      ).code,
    ).toBe(8)
  }, 90_000)

  it('policies and reference values round-trip through the admin commands; a bad policy is refused locally', async () => {
    const got = await coffer(['kbs', 'get-policy', ...admin, '--json'])
    expect(got.json()[0]!.policy).toEqual(JSON.parse(POLICY))
    await writeFile(
      join(dir, 'bad.json'),
      '{"version":"coffer.dev/kbs-resource-policy/v1","rules":[{"effect":"allow","resources":["*"],"when":"tee =="}]}',
    )
    const bad = await coffer(['kbs', 'set-policy', join(dir, 'bad.json'), ...admin])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/invalid CEL expression/)
    await writeFile(
      join(dir, 'refs.json'),
      JSON.stringify({ 'sample.svn': ['1'], 'sample.launch_digest': 'abcde' }),
    )
    expect((await coffer(['kbs', 'set-reference-values', join(dir, 'refs.json'), ...admin])).code).toBe(0)
    const list = await coffer(['kbs', 'list-resources', ...admin, '--json'])
    expect(list.json()[0]!.resources).toEqual(expect.arrayContaining(['kbs:///default/image-kek/app']))
  }, 60_000)

  it('stops cleanly on SIGTERM', async () => {
    expect(await kbs.stop()).toBe(0)
  })
})
