/**
 * coffer copy against a real registry (Debian docker-registry) in every auth mode, and against real
 * skopeo in both directions: digests must survive byte for byte.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { coffer, resultOf } from '../helpers/coffer.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { makeSampleLayout, skopeo, type SampleImage } from '../helpers/skopeo.js'

let work: string
let sample: SampleImage
const layout = () => join(work, 'src')

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-copy-'))
  sample = await makeSampleLayout(layout(), 'v1', { layers: 3, layerBytes: 300_000 })
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

async function blobFiles(dir: string, digests: string[]): Promise<Buffer[]> {
  return Promise.all(digests.map((d) => readFile(join(dir, 'blobs', 'sha256', d.slice('sha256:'.length)))))
}

describe.each(['none', 'basic', 'token'] as const)('round trip through a registry with %s auth', (auth) => {
  let reg: TestRegistry
  const creds = (): string[] => (reg.username ? ['--dest-creds', `${reg.username}:${reg.password}`] : [])
  const srcCreds = (): string[] => (reg.username ? ['--src-creds', `${reg.username}:${reg.password}`] : [])

  beforeAll(async () => {
    reg = await startRegistry({ auth })
  })
  afterAll(async () => {
    await reg?.stop()
  })

  it('push and pull keep the manifest digest and every blob byte for byte', async () => {
    const push = await coffer([
      'copy',
      '--json',
      ...creds(),
      `oci:${layout()}:v1`,
      `docker://${reg.host}/rt/app:1`,
    ])
    expect(push.stderr).not.toContain('coffer:')
    expect(push.code).toBe(0)
    expect(resultOf(push)).toMatchObject({ digest: sample.manifest.digest, blobsCopied: 4 })

    const back = join(work, `back-${auth}`)
    const pull = await coffer([
      'copy',
      '--json',
      ...srcCreds(),
      `docker://${reg.host}/rt/app:1`,
      `oci:${back}:got`,
    ])
    expect(pull.code).toBe(0)
    expect(resultOf(pull)).toMatchObject({ digest: sample.manifest.digest })
    const digests = [sample.manifest.digest, sample.config.digest, ...sample.layers.map((l) => l.digest)]
    expect(await blobFiles(back, digests)).toEqual(await blobFiles(layout(), digests))
    // skopeo, not coffer, reads the result.
    const raw = await skopeo(['inspect', '--raw', `oci:${back}:got`])
    expect(raw.stdout).toBe((await blobFiles(layout(), [sample.manifest.digest]))[0]!.toString())
  })

  it('a second push skips every blob that is already there', async () => {
    const again = await coffer([
      'copy',
      '--json',
      ...creds(),
      `oci:${layout()}:v1`,
      `docker://${reg.host}/rt/app:2`,
    ])
    expect(again.code).toBe(0)
    expect(resultOf(again)).toMatchObject({ blobsCopied: 0, blobsSkipped: 4 })
  })

  if (auth !== 'none') {
    it('wrong credentials: a clear error naming the registry, exit 6, nothing pushed', async () => {
      const bad = await coffer([
        'copy',
        '--dest-creds',
        `${reg.username}:wrong`,
        `oci:${layout()}:v1`,
        `docker://${reg.host}/rt/other:1`,
      ])
      expect(bad.code).toBe(6)
      expect(bad.stderr).toContain('ERR_REGISTRY_UNAUTHORIZED')
      expect(bad.stderr).toContain(reg.host)
      expect(bad.stderr).not.toContain('wrong')
      const none = await coffer(['copy', `docker://${reg.host}/rt/other:1`, `oci:${join(work, 'nothing')}:x`])
      expect(none.code).toBe(6)
      expect(none.stderr).toMatch(/requires authentication/)
    })

    it('credentials come from --authfile (auth.json) too', async () => {
      const authfile = join(work, `auth-${auth}.json`)
      const token = Buffer.from(`${reg.username}:${reg.password}`).toString('base64')
      await writeFile(authfile, JSON.stringify({ auths: { [reg.host]: { auth: token } } }))
      const run = await coffer([
        'copy',
        '--authfile',
        authfile,
        `docker://${reg.host}/rt/app:1`,
        `oci:${join(work, `af-${auth}`)}:x`,
      ])
      expect(run.stderr).not.toContain('coffer:')
      expect(run.code).toBe(0)
    })
  }

  if (auth === 'token') {
    it('an identity token in auth.json is traded for access tokens (OAuth2 refresh_token grant)', async () => {
      // Log in as `docker login` would: the realm from the registry's challenge, a password grant
      // with access_type=offline, keep only the refresh token.
      const challenge = (await fetch(`${reg.url}/v2/`)).headers.get('www-authenticate') ?? ''
      const realm = /realm="([^"]+)"/.exec(challenge)![1]!
      const service = /service="([^"]+)"/.exec(challenge)![1]!
      const form = new URLSearchParams({
        grant_type: 'password',
        username: reg.username!,
        password: reg.password!,
        service,
        client_id: 'test',
        access_type: 'offline',
      })
      const login = (await (await fetch(realm, { method: 'POST', body: form })).json()) as {
        refresh_token: string
      }
      expect(login.refresh_token).toBeTruthy()
      const authfile = join(work, 'identity.json')
      await writeFile(
        authfile,
        JSON.stringify({ auths: { [reg.host]: { identitytoken: login.refresh_token } } }),
      )
      const run = await coffer([
        'copy',
        '--authfile',
        authfile,
        `docker://${reg.host}/rt/app:1`,
        `oci:${join(work, 'identity')}:x`,
      ])
      expect(run.stderr).not.toContain('coffer:')
      expect(run.code).toBe(0)
      await writeFile(
        authfile,
        JSON.stringify({ auths: { [reg.host]: { identitytoken: 'not-a-refresh-token' } } }),
      )
      const bad = await coffer([
        'copy',
        '--authfile',
        authfile,
        `docker://${reg.host}/rt/app:1`,
        `oci:${join(work, 'identity-bad')}:x`,
      ])
      expect(bad.code).not.toBe(0)
      expect(bad.stderr).not.toContain('not-a-refresh-token')
    })

    it('caches tokens per scope instead of asking for one per request', async () => {
      const before = reg.tokenRequests()
      const run = await coffer([
        'copy',
        ...srcCreds(),
        `docker://${reg.host}/rt/app:1`,
        `oci:${join(work, 'cache')}:x`,
      ])
      expect(run.code).toBe(0)
      // One pull scope for a manifest and four blobs.
      expect(reg.tokenRequests() - before).toBe(1)
    })
  }
})

describe('interop with skopeo', () => {
  let reg: TestRegistry
  beforeAll(async () => {
    reg = await startRegistry()
  })
  afterAll(async () => {
    await reg?.stop()
  })

  it('an image pushed by skopeo is copied by coffer into a layout that skopeo reads with the same digest', async () => {
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${layout()}:v1`, `docker://${reg.host}/sk/app:1`])
    const remote = JSON.parse(
      (await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/sk/app:1`])).stdout,
    ) as { Digest: string }
    const dir = join(work, 'from-skopeo')
    const run = await coffer(['copy', `docker://${reg.host}/sk/app:1`, `oci:${dir}:pulled`])
    expect(run.code).toBe(0)
    const local = JSON.parse((await skopeo(['inspect', `oci:${dir}:pulled`])).stdout) as { Digest: string }
    expect(local.Digest).toBe(remote.Digest)
    expect(local.Digest).toBe(sample.manifest.digest)
  })

  it('an image pushed by coffer is copied by skopeo into a layout with the same digest', async () => {
    const run = await coffer(['copy', `oci:${layout()}:v1`, `docker://${reg.host}/co/app:1`])
    expect(run.code).toBe(0)
    const dir = join(work, 'by-skopeo')
    await skopeo(['copy', '--src-tls-verify=false', `docker://${reg.host}/co/app:1`, `oci:${dir}:pulled`])
    const local = JSON.parse((await skopeo(['inspect', `oci:${dir}:pulled`])).stdout) as { Digest: string }
    expect(local.Digest).toBe(sample.manifest.digest)
  })

  it('registry to registry across repositories mounts blobs instead of uploading them', async () => {
    const run = await coffer([
      'copy',
      '--json',
      `docker://${reg.host}/co/app:1`,
      `docker://${reg.host}/co/mounted:1`,
    ])
    expect(run.code).toBe(0)
    const skipped = run.json().filter((e) => e.event === 'blob-skipped')
    expect(skipped.map((e) => e.reason)).toEqual(['mounted', 'mounted', 'mounted', 'mounted'])
    const remote = JSON.parse(
      (await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/co/mounted:1`])).stdout,
    ) as { Digest: string }
    expect(remote.Digest).toBe(sample.manifest.digest)
  })

  it('coffer inspect agrees with skopeo inspect', async () => {
    const ours = await coffer(['inspect', '--json', `docker://${reg.host}/co/app:1`])
    expect(ours.code).toBe(0)
    const info = ours.json()[0] as {
      digest: string
      layers: { digest: string; size: number }[]
      diffIds: string[]
    }
    // skopeo 1.9.3 (Debian) predates LayersData: compare digests, and sizes with the manifest.
    const theirs = JSON.parse(
      (await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/co/app:1`])).stdout,
    ) as {
      Digest: string
      Layers: string[]
    }
    expect(info.digest).toBe(theirs.Digest)
    expect(info.layers.map((l) => l.digest)).toEqual(theirs.Layers)
    expect(info.layers.map((l) => l.size)).toEqual(sample.layers.map((l) => l.size))
    expect(info.diffIds).toEqual(sample.layers.map((l) => l.diffId))
    const raw = await coffer(['inspect', '--raw', `docker://${reg.host}/co/app:1`])
    expect(raw.stdout).toBe(
      (await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/co/app:1`])).stdout,
    )
    const config = await coffer(['inspect', '--config', '--raw', `docker://${reg.host}/co/app:1`])
    expect(config.stdout).toBe(
      (await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${reg.host}/co/app:1`]))
        .stdout,
    )
  })
})
