/**
 * `coffer pull --config` with the registry files of issue 7 as a guest gets them: auth.json,
 * registries.conf and registries.d, each from a local file or a KBS resource fetched after
 * attestation (and held in memory), against a registry that wants basic auth. Flags win over the
 * config; `limits.max_image_bytes` refuses an image before any layer is fetched.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { coffer, resultOf } from '../helpers/coffer.js'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { makeSampleLayout, skopeo } from '../helpers/skopeo.js'

describe('coffer pull --config: auth, registries.conf, registries.d, limits', () => {
  let work: string
  let reg: TestRegistry
  let kbs: TestKbs
  let n = 0
  const file = (name: string): string => join(work, name)
  const image = (r: string): string => `docker://${reg.host}/${r}`

  /** Writes a config with a [kbs] section and `image` lines; returns its path. */
  const config = async (image: string[], extra = ''): Promise<string> => {
    const path = file(`config-${++n}.toml`)
    await writeFile(
      path,
      `[kbs]\nurl = "${kbs.url}"\nattester = "sample"\n\n[image]\n${image.join('\n')}\n${extra}`,
    )
    return path
  }
  /** `coffer pull --config CONFIG … IMAGE` into a fresh store and rootfs. */
  const pull = (configPath: string, ref: string, flags: string[] = []) =>
    coffer([
      'pull',
      '--json',
      '--config',
      configPath,
      ...flags,
      '--store',
      file(`store-${++n}`),
      '--rootfs',
      file(`rootfs-${n}`),
      '--rootfs-mode',
      'materialize',
      ref,
    ])

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-pull-config-'))
    reg = await startRegistry({ auth: 'basic' })
    kbs = await startTestKbs()
    const creds = `${reg.username}:${reg.password}`
    await makeSampleLayout(file('src'), 'v1')
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      creds,
      `oci:${file('src')}:v1`,
      image('app:v1'),
    ])
    const env = { COSIGN_PASSWORD: 'pw' }
    expect(
      (await coffer(['keys', 'generate', '--type', 'cosign', '--out', file('cosign')], { env })).code,
    ).toBe(0)
    const signed = await coffer(
      ['sign', '--tls-verify=false', '--creds', creds, '--key', file('cosign.key'), image('app:v1')],
      { env },
    )
    expect(signed.code, signed.stderr).toBe(0)
    await writeFile(
      file('policy.json'),
      JSON.stringify({
        default: [{ type: 'reject' }],
        transports: {
          docker: {
            [`${reg.host}/app`]: [
              {
                type: 'sigstoreSigned',
                keyPath: file('cosign.pub'),
                signedIdentity: { type: 'matchRepository' },
              },
            ],
          },
        },
      }),
    )
    const auth = JSON.stringify({
      auths: { [reg.host]: { auth: Buffer.from(creds).toString('base64') } },
    })
    await writeFile(file('auth.json'), auth, { mode: 0o600 })
    // `alias.example/app` is really this registry's `app`, over plain HTTP.
    const alias = `[[registry]]\nprefix = "alias.example/app"\nlocation = "${reg.host}/app"\ninsecure = true\n`
    await writeFile(file('alias.conf'), alias)
    await writeFile(file('blocked.conf'), `${alias}blocked = true\n`)
    await mkdir(file('empty.d'))

    await kbs.putResources({
      'apps/auth/guest': auth,
      'apps/registries-conf/guest': alias,
      'apps/registries-d/guest': 'default-docker:\n  use-sigstore-attachments: true\n',
    })
    await kbs.allowResources(['apps/*/*'], 'tee == "sample"')
  }, 120_000)
  afterAll(async () => {
    await kbs?.close()
    await reg?.stop()
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('auth.json and registries.d from the KBS: a signed image behind basic auth is pulled; without them it is refused', async () => {
    const kbsAuth = 'auth = "kbs:///apps/auth/guest"'
    const kbsRegistriesD = 'registries_d = "kbs:///apps/registries-d/guest"'
    const policy = `policy = "${file('policy.json')}"`
    const ok = await pull(await config([policy, kbsAuth, kbsRegistriesD]), image('app:v1'), [
      '--tls-verify=false',
    ])
    expect(ok.code, ok.stderr).toBe(0)
    expect(resultOf(ok)).toMatchObject({ layersUnpacked: 2 })
    expect(ok.json().some((l) => (l.event as { type?: string } | undefined)?.type === 'verified')).toBe(true)
    // Without the auth file: the registry refuses the anonymous pull.
    const anonymous = await pull(await config([policy, kbsRegistriesD]), image('app:v1'), [
      '--tls-verify=false',
    ])
    expect(anonymous.code).not.toBe(0)
    expect(anonymous.stderr).toMatch(/ERR_REGISTRY_UNAUTHORIZED/)
    // Without registries.d enabling sigstore attachments, the cosign signature is not looked for.
    const unsigned = await pull(
      await config([policy, kbsAuth, `registries_d = "${file('empty.d')}"`]),
      image('app:v1'),
      ['--tls-verify=false'],
    )
    expect(unsigned.code).toBe(7)
    expect(unsigned.stderr).toMatch(/ERR_SIGN_POLICY_DENIED/)
    // A single local registries.d file works as the KBS document does.
    await writeFile(file('registries.yaml'), 'default-docker:\n  use-sigstore-attachments: true\n')
    const localFile = await pull(
      await config([policy, `auth = "${file('auth.json')}"`, `registries_d = "${file('registries.yaml')}"`]),
      image('app:v1'),
      ['--tls-verify=false'],
    )
    expect(localFile.code, localFile.stderr).toBe(0)
  }, 180_000)

  it('registries.conf from the KBS or a file rewrites and blocks names; --registries-conf and --authfile win over the config', async () => {
    const insecure = 'insecure_accept_anything = true'
    // The KBS registries.conf maps alias.example/app to the registry (insecure: no --tls-verify flag needed).
    const viaKbs = await pull(
      await config([
        insecure,
        'auth = "kbs:///apps/auth/guest"',
        'registries_conf = "kbs:///apps/registries-conf/guest"',
      ]),
      'docker://alias.example/app:v1',
    )
    expect(viaKbs.code, viaKbs.stderr).toBe(0)
    const blockedConfig = await config([
      insecure,
      `auth = "${file('auth.json')}"`,
      `registries_conf = "${file('blocked.conf')}"`,
    ])
    const blocked = await pull(blockedConfig, 'docker://alias.example/app:v1')
    expect(blocked.code).toBe(7)
    expect(blocked.stderr).toMatch(/ERR_REGISTRY_BLOCKED/)
    // Flags win: --registries-conf replaces the config's (blocked) one.
    const flagConf = await pull(blockedConfig, 'docker://alias.example/app:v1', [
      '--registries-conf',
      file('alias.conf'),
    ])
    expect(flagConf.code, flagConf.stderr).toBe(0)
    // --authfile wins over the config's auth: a file with wrong credentials is what gets used.
    await writeFile(
      file('wrong-auth.json'),
      JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('coffer:wrong').toString('base64') } } }),
    )
    const flagAuth = await pull(blockedConfig, 'docker://alias.example/app:v1', [
      '--registries-conf',
      file('alias.conf'),
      '--authfile',
      file('wrong-auth.json'),
    ])
    expect(flagAuth.code).not.toBe(0)
    expect(flagAuth.stderr).toMatch(/ERR_REGISTRY_UNAUTHORIZED/)
  }, 180_000)

  it('limits.max_image_bytes refuses an image larger than it before any layer is fetched', async () => {
    const small = await config(
      ['insecure_accept_anything = true', `auth = "${file('auth.json')}"`],
      '\n[limits]\nmax_image_bytes = 1000\n',
    )
    const refused = await pull(small, image('app:v1'), ['--tls-verify=false'])
    expect(refused.code).toBe(10)
    expect(refused.stderr).toMatch(/ERR_IMAGE_LAYER_TOO_LARGE/)
    expect(refused.stderr).toMatch(/max_image_bytes/)
    expect(await readdir(file(`store-${n}/layers/sha256`))).toEqual([])
    expect(await readdir(file(`store-${n}/staging`))).toEqual([])
  }, 60_000)
})
