/**
 * `coffer pull` as a guest uses it, against a real registry, skopeo, umoci and a coffer KBS:
 *  - a skopeo-encrypted (jwe) image pulled with a local key gives the tree `umoci unpack` gives for
 *    the plaintext image;
 *  - an image encrypted for a KBS-held key and cosign-signed is pulled after attestation, with the
 *    policy and its key fetched from the KBS;
 *  - a policy refusal, a wrong key or a tampered layer commits nothing.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { provisionAk } from '../../lib/attest/tpm/provision.js'
import { generateKeyPair } from '../../lib/crypt/keys.js'
import { coffer, resultOf } from '../helpers/coffer.js'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'
import { snapshotTree, writeLayerImage, type NodeInfo } from '../helpers/layer-image.js'
import { call } from '../helpers/rcar.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { skopeo } from '../helpers/skopeo.js'
import { startSwtpm } from '../helpers/swtpm.js'
import type { TarEntry } from '../helpers/tar-builder.js'

const execFileP = promisify(execFile)
const isRoot = process.getuid?.() === 0

const LAYERS: TarEntry[][] = [
  [
    { name: 'etc/', type: 'dir', mode: 0o755 },
    { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
    { name: 'usr/bin/', type: 'dir' },
    { name: 'usr/bin/su', content: 'su-binary', mode: 0o4755 },
    { name: 'usr/bin/busybox', content: 'busybox', mode: 0o755 },
    { name: 'usr/bin/sh', type: 'link', target: 'usr/bin/busybox' },
    { name: 'bin', type: 'symlink', target: 'usr/bin' },
    { name: 'home/user/.profile', content: 'export X=1\n', uid: 1000, gid: 1000 },
    { name: 'gone', content: 'bye' },
  ],
  [
    { name: '.wh.gone', content: '' },
    { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/bash\n', mode: 0o644 },
    { name: 'usr/bin/su2', type: 'link', target: 'usr/bin/su' },
    { name: 'app/run.sh', content: '#!/bin/sh\necho hello\n', mode: 0o755 },
  ],
]

/** Files and links with contents, modes, owners; directory mtimes differ by design and are not compared. */
const snap = async (root: string): Promise<Record<string, NodeInfo>> => {
  const t = await snapshotTree(root, { mtimes: ['file', 'symlink'], owners: isRoot })
  for (const n of Object.values(t)) if (n.type === 'dir') delete n.mtime
  return t
}

describe('coffer pull', () => {
  let work: string
  let reg: TestRegistry
  let kbs: TestKbs
  let umociTree: Record<string, NodeInfo>
  const file = (n: string): string => join(work, n)
  const image = (r: string): string => `docker://${reg.host}/${r}`

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-pull-'))
    reg = await startRegistry()
    kbs = await startTestKbs()
    await writeLayerImage(file('plain'), LAYERS, 'v1')
    // c/image reads cosign signatures only where registries.d enables sigstore attachments.
    await (await import('node:fs/promises')).mkdir(file('registries.d'))
    await writeFile(file('registries.d/default.yaml'), 'default-docker:\n  use-sigstore-attachments: true\n')
    await execFileP(
      'umoci',
      ['unpack', ...(isRoot ? [] : ['--rootless']), '--image', `${file('plain')}:v1`, file('bundle')],
      { timeout: 120_000 },
    )
    umociTree = await snap(file('bundle/rootfs'))
    const pair = await generateKeyPair('ec', { curve: 'P-256' })
    await writeFile(file('k.key'), pair.privatePem, { mode: 0o600 })
    await writeFile(file('k.pub'), pair.publicPem)
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--encryption-key',
      `jwe:${file('k.pub')}`,
      `oci:${file('plain')}:v1`,
      image('app:jwe'),
    ])
  }, 120_000)
  afterAll(async () => {
    await kbs?.close()
    await reg?.stop()
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('a skopeo-encrypted image, pulled with a local key, equals umoci unpack of the plaintext', async () => {
    const run = await coffer([
      'pull',
      '--json',
      '--tls-verify=false',
      '--insecure-policy',
      '--decryption-key',
      file('k.key'),
      '--store',
      file('store'),
      '--rootfs',
      file('r1'),
      '--rootfs-mode',
      'materialize',
      image('app:jwe'),
    ])
    expect(run.code, run.stderr).toBe(0)
    const result = resultOf(run)
    expect(result).toMatchObject({ layersUnpacked: 2, layersReused: 0, rootfsKind: 'materialized' })
    expect(await snap(String(result.rootfs))).toEqual(umociTree)
    // Again: every layer reused, the key still had to be released (the key is given again).
    const again = await coffer([
      'pull',
      '--json',
      '--tls-verify=false',
      '--insecure-policy',
      '--decryption-key',
      file('k.key'),
      '--store',
      file('store'),
      '--rootfs',
      file('r2'),
      '--rootfs-mode',
      'materialize',
      image('app:jwe'),
    ])
    expect(resultOf(again)).toMatchObject({ layersUnpacked: 0, layersReused: 2 })
    // Cached layers are not handed out without the key.
    const noKey = await coffer([
      'pull',
      '--tls-verify=false',
      '--insecure-policy',
      '--store',
      file('store'),
      '--rootfs',
      file('r3'),
      image('app:jwe'),
    ])
    expect(noKey.code).toBe(5)
    expect(noKey.stderr).toMatch(/ERR_CRYPT_NO_KEY/)
  }, 120_000)

  it('policy refusal and a wrong key commit nothing', async () => {
    await writeFile(file('reject.json'), JSON.stringify({ default: [{ type: 'reject' }] }))
    const refused = await coffer([
      'pull',
      '--tls-verify=false',
      '--policy',
      file('reject.json'),
      '--decryption-key',
      file('k.key'),
      '--store',
      file('store2'),
      '--rootfs',
      file('r4'),
      image('app:jwe'),
    ])
    expect(refused.code).toBe(7)
    expect(await readdir(file('store2/layers/sha256')).catch(() => [])).toEqual([])
    const other = await generateKeyPair('ec', { curve: 'P-256' })
    await writeFile(file('other.key'), other.privatePem, { mode: 0o600 })
    const wrong = await coffer([
      'pull',
      '--tls-verify=false',
      '--insecure-policy',
      '--decryption-key',
      file('other.key'),
      '--store',
      file('store2'),
      '--rootfs',
      file('r5'),
      image('app:jwe'),
    ])
    expect(wrong.code).not.toBe(0)
    expect(await readdir(file('store2/layers/sha256'))).toEqual([])
    expect(await readdir(file('store2/staging'))).toEqual([])
  }, 120_000)

  it('an image encrypted for a KBS-held key and cosign-signed is pulled after attestation, policy and key from the KBS', async () => {
    const kek = file('image.kek')
    await writeFile(kek, Buffer.alloc(32, 7), { mode: 0o600 })
    const enc = await coffer([
      'encrypt',
      '--dest-tls-verify=false',
      '--encryption-key',
      'kbs:///apps/image-kek/app',
      '--kek',
      kek,
      `oci:${file('plain')}:v1`,
      image('app:kbs'),
    ])
    expect(enc.code, enc.stderr).toBe(0)
    const env = { COSIGN_PASSWORD: 'pw' }
    expect(
      (await coffer(['keys', 'generate', '--type', 'cosign', '--out', file('cosign')], { env })).code,
    ).toBe(0)
    const signed = await coffer(
      ['sign', '--tls-verify=false', '--key', file('cosign.key'), image('app:kbs')],
      { env },
    )
    expect(signed.code, signed.stderr).toBe(0)
    const policy = {
      default: [{ type: 'reject' }],
      transports: {
        docker: {
          [`${reg.host}/app`]: [
            {
              type: 'sigstoreSigned',
              keyPath: 'kbs:///apps/cosign-key/app',
              signedIdentity: { type: 'matchRepository' },
            },
          ],
        },
      },
    }
    await kbs.putResources({
      'apps/image-kek/app': Buffer.alloc(32, 7),
      'apps/cosign-key/app': await readFile(file('cosign.pub')),
      'apps/security-policy/app': JSON.stringify(policy),
    })
    await kbs.allowResources(['apps/*/*'], 'tee == "sample"')

    const run = await coffer([
      'pull',
      '--json',
      '--tls-verify=false',
      '--registries.d',
      file('registries.d'),
      '--kbs-url',
      kbs.url,
      '--attester',
      'sample',
      '--policy',
      'kbs:///apps/security-policy/app',
      '--store',
      file('store3'),
      '--rootfs',
      file('r6'),
      '--rootfs-mode',
      'materialize',
      image('app:kbs'),
    ])
    expect(run.code, run.stderr + run.stdout).toBe(0)
    expect(await snap(String(resultOf(run).rootfs))).toEqual(umociTree)
    expect(run.json().some((l) => (l.event as { type?: string } | undefined)?.type === 'verified')).toBe(true)
    // Another encryption of the same image (another digest), not signed: refused before any layer is fetched.
    const again = await coffer([
      'encrypt',
      '--dest-tls-verify=false',
      '--encryption-key',
      'kbs:///apps/image-kek/app',
      '--kek',
      kek,
      `oci:${file('plain')}:v1`,
      image('app:unsigned'),
    ])
    expect(again.code, again.stderr).toBe(0)
    const unsigned = await coffer([
      'pull',
      '--tls-verify=false',
      '--registries.d',
      file('registries.d'),
      '--kbs-url',
      kbs.url,
      '--attester',
      'sample',
      '--policy',
      'kbs:///apps/security-policy/app',
      '--store',
      file('store4'),
      '--rootfs',
      file('r7'),
      image('app:unsigned'),
    ])
    expect(unsigned.code, unsigned.stderr).toBe(7)
    expect(await readdir(file('store4/layers/sha256'))).toEqual([])
  }, 180_000)

  it('the same KBS-key image pulled by a guest attesting with a real TPM quote (swtpm)', async () => {
    const tpm = await startSwtpm()
    try {
      const { akPublicDer } = await provisionAk({ tcti: tpm.tcti })
      const h = await kbs.adminHeaders()
      const fingerprint = createHash('sha256').update(akPublicDer).digest('hex')
      const refs = { 'tpm.trusted_ak': [fingerprint] }
      await call(`${kbs.url}/kbs/v0/reference-value`, {
        method: 'POST',
        headers: { ...h, 'content-type': 'application/json' },
        body: JSON.stringify({
          version: '0.1.0',
          type: 'sample',
          payload: Buffer.from(JSON.stringify(refs)).toString('base64'),
        }),
      })
      // Only a TPM whose AK the KBS trusts gets these keys (no PCR reference values: status is warning).
      await kbs.allowResources(['apps/*/*'], 'tee == "tpm" && trust.hardware == 2')
      const args = (attester: string[]) => [
        'pull',
        '--json',
        '--tls-verify=false',
        '--registries.d',
        file('registries.d'),
        '--kbs-url',
        kbs.url,
        ...attester,
        '--policy',
        'kbs:///apps/security-policy/app',
        '--store',
        file(`store-tpm-${attester[1]}`),
        '--rootfs',
        file(`r-tpm-${attester[1]}`),
        '--rootfs-mode',
        'materialize',
        image('app:kbs'),
      ]
      const run = await coffer(args(['--attester', 'tpm', '--attester-opt', `tcti=${tpm.tcti}`]))
      expect(run.code, run.stderr).toBe(0)
      expect(await snap(String(resultOf(run).rootfs))).toEqual(umociTree)
      // The sample attester no longer gets anything.
      const sample = await coffer(args(['--attester', 'sample']))
      expect(sample.code).not.toBe(0)
      expect(sample.stderr).toMatch(/ERR_KBS_DENIED/)
    } finally {
      await tpm.stop()
    }
  }, 180_000)
})
