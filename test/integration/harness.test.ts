/**
 * Checks the integration-test harness itself against the real tools: the registry helper in each auth
 * mode (with skopeo as the client), the token server's endpoints, the sample OCI layout, and the fault
 * proxy's cuts and canned answers. If this file fails, interop failures elsewhere mean nothing.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFaultProxy, type FaultProxy, type RequestMatch } from '../helpers/fault-proxy.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { makeSampleLayout, skopeo, type SampleImage } from '../helpers/skopeo.js'

const execFileP = promisify(execFile)
const REPO = 'coffer/sample'
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

/** `--src-creds`/`--dest-creds` for a registry with auth, nothing for an open one. */
function credsArgs(reg: TestRegistry, side: 'src' | 'dest', password = reg.password): string[] {
  return reg.username ? [`--${side}-creds`, `${reg.username}:${password}`] : []
}

function push(reg: TestRegistry, layout: string, host = reg.host, password?: string) {
  return skopeo([
    'copy',
    '--dest-tls-verify=false',
    ...credsArgs(reg, 'dest', password),
    `oci:${layout}:v1`,
    `docker://${host}/${REPO}:v1`,
  ])
}

/** Pulls `REPO:v1` into a new layout and returns the manifest digest its index.json records. */
async function pullDigest(reg: TestRegistry, dest: string, host = reg.host): Promise<string | undefined> {
  await skopeo([
    'copy',
    '--src-tls-verify=false',
    ...credsArgs(reg, 'src'),
    `docker://${host}/${REPO}:v1`,
    `oci:${dest}:v1`,
  ])
  const index = JSON.parse(await readFile(join(dest, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[]
  }
  return index.manifests[0]?.digest
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
}

function sha256(b: Uint8Array): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`
}

/** Reads a fetch body to the end or to the first error, keeping what arrived before it. */
async function readUntilError(res: Response): Promise<{ bytes: Buffer; error?: unknown }> {
  const chunks: Uint8Array[] = []
  try {
    for await (const chunk of res.body ?? []) chunks.push(chunk as Uint8Array)
    return { bytes: Buffer.concat(chunks) }
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error }
  }
}

describe.each(['none', 'basic', 'token'] as const)('registry helper, auth=%s', (auth) => {
  let reg: TestRegistry
  let work: string
  let image: SampleImage

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-harness-'))
    image = await makeSampleLayout(join(work, 'src'), 'v1', { layers: 2, layerBytes: 64 * 1024 })
    reg = await startRegistry({ auth })
  })
  afterAll(async () => {
    await reg?.stop()
    await rm(work, { recursive: true, force: true })
  })

  it('skopeo pushes the sample layout and pulls back the same manifest digest', async () => {
    await push(reg, join(work, 'src'))
    const { stdout } = await skopeo([
      'inspect',
      '--tls-verify=false',
      ...(reg.username ? ['--creds', `${reg.username}:${reg.password}`] : []),
      `docker://${reg.host}/${REPO}:v1`,
    ])
    expect((JSON.parse(stdout) as { Digest: string }).Digest).toBe(image.manifest.digest)
    expect(await pullDigest(reg, join(work, 'dst'))).toBe(image.manifest.digest)
    if (auth === 'token') expect(reg.tokenRequests()).toBeGreaterThan(0)
    else expect(reg.tokenRequests()).toBe(0)
  })

  if (auth !== 'none') {
    it('skopeo fails with a wrong password', async () => {
      await expect(push(reg, join(work, 'src'), reg.host, 'wrong-password')).rejects.toThrow(
        /unauthorized|authentication required|invalid username\/password/i,
      )
    })

    it('the registry refuses an anonymous request with 401', async () => {
      const res = await fetch(`${reg.url}/v2/${REPO}/tags/list`)
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toMatch(auth === 'basic' ? /^Basic / : /^Bearer realm="/)
    })
  }

  if (auth === 'basic') {
    it('the registry accepts Basic credentials', async () => {
      const res = await fetch(`${reg.url}/v2/${REPO}/tags/list`, {
        headers: { authorization: basic(reg.username ?? '', reg.password ?? '') },
      })
      expect(await res.json()).toEqual({ name: REPO, tags: ['v1'] })
    })
  }

  if (auth === 'token') {
    /** Realm, service and scope from the registry's Bearer challenge for a tags/list of REPO. */
    async function challenge(): Promise<{ realm: string; service: string; scope: string }> {
      const res = await fetch(`${reg.url}/v2/${REPO}/tags/list`)
      const header = res.headers.get('www-authenticate') ?? ''
      const param = (k: string): string => new RegExp(`${k}="([^"]*)"`).exec(header)?.[1] ?? ''
      return { realm: param('realm'), service: param('service'), scope: param('scope') }
    }

    it('GET /token: anonymous 401, credentials get a token the registry accepts for that scope only', async () => {
      const { realm, service, scope } = await challenge()
      expect(scope).toBe(`repository:${REPO}:pull`)
      const before = reg.tokenRequests()
      const q = (s: string): string =>
        `${realm}?service=${encodeURIComponent(service)}&scope=${encodeURIComponent(s)}`

      expect((await fetch(q(scope))).status).toBe(401)
      const auth = { authorization: basic(reg.username ?? '', reg.password ?? '') }
      const body = (await (await fetch(q(scope), { headers: auth })).json()) as Record<string, unknown>
      expect(body).toMatchObject({ expires_in: 300, issued_at: expect.any(String) })
      expect(body.access_token).toBe(body.token)

      const tags = await fetch(`${reg.url}/v2/${REPO}/tags/list`, {
        headers: { authorization: `Bearer ${body.token}` },
      })
      expect(await tags.json()).toEqual({ name: REPO, tags: ['v1'] })

      const other = (await (await fetch(q('repository:other/repo:pull'), { headers: auth })).json()) as {
        token: string
      }
      const denied = await fetch(`${reg.url}/v2/${REPO}/tags/list`, {
        headers: { authorization: `Bearer ${other.token}` },
      })
      expect(denied.status).toBe(401)
      expect(reg.tokenRequests() - before).toBe(3)
    })

    it('POST /token: password grant with access_type=offline returns a refresh_token that works', async () => {
      const { realm, service } = await challenge()
      const post = (form: Record<string, string>) =>
        fetch(realm, {
          method: 'POST',
          body: new URLSearchParams({ service, client_id: 'coffer-test', ...form }),
        })

      const bad = await post({ grant_type: 'password', username: reg.username ?? '', password: 'nope' })
      expect(bad.status).toBe(400)
      expect(await bad.json()).toEqual({ error: 'invalid_grant' })

      const first = (await (
        await post({
          grant_type: 'password',
          username: reg.username ?? '',
          password: reg.password ?? '',
          access_type: 'offline',
          scope: `repository:${REPO}:pull registry:catalog:*`,
        })
      ).json()) as { access_token: string; refresh_token?: string }
      expect(first.refresh_token).toEqual(expect.any(String))
      const catalog = await fetch(`${reg.url}/v2/_catalog`, {
        headers: { authorization: `Bearer ${first.access_token}` },
      })
      expect(await catalog.json()).toEqual({ repositories: [REPO] })

      const refreshed = (await (
        await post({
          grant_type: 'refresh_token',
          refresh_token: first.refresh_token ?? '',
          scope: `repository:${REPO}:pull`,
        })
      ).json()) as { access_token: string }
      const tags = await fetch(`${reg.url}/v2/${REPO}/tags/list`, {
        headers: { authorization: `Bearer ${refreshed.access_token}` },
      })
      expect(tags.status).toBe(200)
      expect((await post({ grant_type: 'refresh_token', refresh_token: 'made-up' })).status).toBe(400)
    })
  }
})

describe('registry helper lifecycle', () => {
  it('stop() kills the registry process and is idempotent', async () => {
    const reg = await startRegistry()
    const children = async (): Promise<string> =>
      (await execFileP('ps', ['-o', 'comm=', '--ppid', String(process.pid)]).catch(() => ({ stdout: '' })))
        .stdout
    expect(await children()).toMatch(/docker-registry/)
    await reg.stop()
    await reg.stop()
    expect(await children()).not.toMatch(/docker-registry/)
    await expect(fetch(`${reg.url}/v2/`)).rejects.toThrow()
  })
})

describe('fault proxy in front of a real registry', () => {
  let reg: TestRegistry
  let proxy: FaultProxy
  let work: string
  let image: SampleImage
  const blobGet: RequestMatch = (method, path) => method === 'GET' && path.includes('/blobs/sha256:')

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-proxy-'))
    image = await makeSampleLayout(join(work, 'src'), 'v1', { layers: 1, layerBytes: 512 * 1024 })
    reg = await startRegistry({ auth: 'basic' })
    proxy = await startFaultProxy(reg.host)
  })
  afterAll(async () => {
    await proxy?.close()
    await reg?.stop()
    await rm(work, { recursive: true, force: true })
  })

  /** Basic credentials for direct requests through the proxy. */
  const auth = (): Record<string, string> => ({
    authorization: basic(reg.username ?? '', reg.password ?? ''),
  })

  it('forwards a skopeo push and pull unchanged and logs every request', async () => {
    await push(reg, join(work, 'src'), proxy.host)
    expect(await pullDigest(reg, join(work, 'dst'), proxy.host)).toBe(image.manifest.digest)
    const seen = proxy.requests().map((r) => `${r.method} ${r.path.split('?')[0]}`)
    expect(seen).toContain(`PUT /v2/${REPO}/manifests/v1`)
    expect(seen).toContain(`GET /v2/${REPO}/blobs/${image.layers[0]?.digest}`)
    expect(seen.some((s) => s.startsWith(`PATCH /v2/${REPO}/blobs/uploads/`))).toBe(true)
  })

  it('dropAfterBytes cuts a blob body after n bytes; a Range request then fetches the rest', async () => {
    const layer = image.layers[0]!
    const url = `http://${proxy.host}/v2/${REPO}/blobs/${layer.digest}`
    proxy.dropAfterBytes(1000, 1, blobGet)

    const cut = await fetch(url, { headers: auth() })
    expect(cut.status).toBe(200)
    const first = await readUntilError(cut)
    expect(first.error).toBeDefined()
    expect(first.bytes.length).toBe(1000)

    const rest = await fetch(url, { headers: { ...auth(), range: 'bytes=1000-' } })
    expect(rest.status).toBe(206)
    const second = await readUntilError(rest)
    expect(second.error).toBeUndefined()
    expect(sha256(Buffer.concat([first.bytes, second.bytes]))).toBe(layer.digest)
    expect(proxy.requests().at(-1)?.headers.range).toBe('bytes=1000-')
  })

  it('curl reports a cut body as a partial transfer, and skopeo pull fails on it', async () => {
    const layer = image.layers[0]!
    proxy.dropAfterBytes(4096, 2, blobGet)
    const curl = execFileP('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-u',
      `${reg.username}:${reg.password}`,
      `http://${proxy.host}/v2/${REPO}/blobs/${layer.digest}`,
    ])
    // curl exit 18: "Partial file. Only a part of the file was transferred."
    await expect(curl).rejects.toMatchObject({ code: 18 })
    // skopeo 1.9 (containers/image 5.23) does not resume a broken blob download.
    await expect(pullDigest(reg, join(work, 'dst-cut'), proxy.host)).rejects.toThrow(/unexpected EOF/)
  })

  it('respondOnce answers one matching request with the canned response, then forwarding resumes', async () => {
    const url = `http://${proxy.host}/v2/${REPO}/manifests/v1`
    const headers = { ...auth(), accept: OCI_MANIFEST }
    proxy.respondOnce(503, { 'Retry-After': '0' }, 'busy\n', (_m, path) => path.includes('/manifests/'))

    const tags = await fetch(`http://${proxy.host}/v2/${REPO}/tags/list`, { headers })
    expect(tags.status).toBe(200)
    const busy = await fetch(url, { headers })
    expect(busy.status).toBe(503)
    expect(busy.headers.get('retry-after')).toBe('0')
    expect(await busy.text()).toBe('busy\n')
    const ok = await fetch(url, { headers })
    expect(ok.status).toBe(200)
    expect(ok.headers.get('docker-content-digest')).toBe(image.manifest.digest)

    // skopeo 1.9 gives up on a 503 at once (it retries a 429 after a back-off, so that is no test).
    proxy.respondOnce(503, {}, '', (_m, path) => path.includes('/manifests/'))
    const inspect = skopeo([
      'inspect',
      '--tls-verify=false',
      '--creds',
      `${reg.username}:${reg.password}`,
      `docker://${proxy.host}/${REPO}:v1`,
    ])
    await expect(inspect).rejects.toThrow(/503 Service Unavailable/)
  })

  it('forwards a chunked request body (blob upload PATCH)', async () => {
    const blob = Buffer.from('chunked upload through the fault proxy\n'.repeat(1000))
    const start = await fetch(`http://${proxy.host}/v2/${REPO}/blobs/uploads/`, {
      method: 'POST',
      headers: auth(),
    })
    expect(start.status).toBe(202)
    const location = new URL(start.headers.get('location') ?? '', `http://${proxy.host}`)
    expect(location.host).toBe(proxy.host)

    const patched = await new Promise<{ status?: number; location?: string }>((resolve, reject) => {
      const req = request(location, {
        method: 'PATCH',
        headers: { ...auth(), 'content-type': 'application/octet-stream' },
      })
      req.on('response', (res) => {
        res.resume()
        resolve({ status: res.statusCode, location: res.headers.location })
      })
      req.on('error', reject)
      // Several writes and no Content-Length: Node sends Transfer-Encoding: chunked.
      for (let i = 0; i < blob.length; i += 8192) req.write(blob.subarray(i, i + 8192))
      req.end()
    })
    expect(patched.status).toBe(202)
    expect(proxy.requests().at(-1)?.headers['transfer-encoding']).toBe('chunked')

    const done = new URL(patched.location ?? '', `http://${proxy.host}`)
    done.searchParams.set('digest', sha256(blob))
    const put = await fetch(done, { method: 'PUT', headers: auth() })
    expect(put.status).toBe(201)
    const back = await fetch(`http://${proxy.host}/v2/${REPO}/blobs/${sha256(blob)}`, { headers: auth() })
    expect(sha256(Buffer.from(await back.arrayBuffer()))).toBe(sha256(blob))
  })
})
