/**
 * `coffer image-service serve` as a daemon on a unix socket, driven through its gRPC API (the
 * client commands): pulls with the policy checked each time, layers shared between images and
 * concurrent pulls, status, list, remove, gc (which waits for a pull in progress), and a clean stop
 * on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '../../lib/crypt/keys.js'
import { connectImageService } from '../../lib/image/service/client.js'
import { coffer, COFFER_BIN } from '../helpers/coffer.js'
import { startGatedProxy, type GatedProxy } from '../helpers/gated-proxy.js'
import { startRegistry, type TestRegistry } from '../helpers/registry.js'
import { makeSampleLayout, skopeo } from '../helpers/skopeo.js'

describe('coffer image-service', () => {
  let work: string
  let reg: TestRegistry
  let server: ChildProcess
  let socket: string
  let proxy: GatedProxy
  const file = (n: string): string => join(work, n)

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'coffer-imgsvc-'))
    reg = await startRegistry()
    await makeSampleLayout(file('src'), 'v1', { layers: 2 })
    await makeSampleLayout(file('src'), 'v2', { layers: 1 })
    const gated = await makeSampleLayout(file('src'), 'v3', { layers: 1 })
    // Pulls through this proxy stop at the v3 layer until the test opens it.
    proxy = await startGatedProxy(reg.host, (path) => path.includes(gated.layers[0]!.digest))
    const pair = await generateKeyPair('ec', { curve: 'P-256' })
    await writeFile(file('k.key'), pair.privatePem, { mode: 0o600 })
    await writeFile(file('k.pub'), pair.publicPem)
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--encryption-key',
      `jwe:${file('k.pub')}`,
      `oci:${file('src')}:v1`,
      `docker://${reg.host}/app:enc`,
    ])
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      `oci:${file('src')}:v1`,
      `docker://${reg.host}/app:plain`,
    ])
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      `oci:${file('src')}:v2`,
      `docker://${reg.host}/other:v2`,
    ])
    await skopeo([
      'copy',
      '--dest-tls-verify=false',
      `oci:${file('src')}:v3`,
      `docker://${reg.host}/app:gated`,
    ])
    // Only this registry's app repository is accepted; everything else is rejected.
    await writeFile(
      file('policy.json'),
      JSON.stringify({
        default: [{ type: 'reject' }],
        transports: {
          docker: {
            [`${reg.host}/app`]: [{ type: 'insecureAcceptAnything' }],
            [`${proxy.host}/app`]: [{ type: 'insecureAcceptAnything' }],
          },
        },
      }),
    )
    socket = file('svc.sock')
    server = spawn(
      process.execPath,
      [
        COFFER_BIN,
        'image-service',
        'serve',
        '--json',
        '--socket',
        socket,
        '--store',
        file('store'),
        '--work-dir',
        file('svc'),
        '--policy',
        file('policy.json'),
        '--decryption-key',
        file('k.key'),
        '--tls-verify=false',
        '--rootfs-mode',
        'materialize',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    server.stderr!.on('data', (d: Buffer) => process.env.DEBUG_SVC && process.stderr.write(d))
    await new Promise<string>((resolve, reject) => {
      createInterface({ input: server.stdout! }).once('line', resolve)
      server.once('exit', (code) => reject(new Error(`image-service exited with ${code}`)))
    })
  }, 120_000)
  afterAll(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM')
      await new Promise((r) => server.once('exit', r))
    }
    await proxy?.close()
    await reg?.stop()
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('pulls (encrypted and plain share layers), concurrently, and answers status and list', async () => {
    const c = connectImageService(socket)
    try {
      const events: { type: string; state?: string }[] = []
      const enc = await c.pullWithProgress(`${reg.host}/app:enc`, (e) => events.push(e))
      expect(enc).toMatchObject({ layers_unpacked: 2, layers_reused: 0 })
      // Progress over gRPC: the policy verdict first, then every layer, each started before it is done
      // (byte counts in between are sampled, so how many arrive depends on the speed).
      const steps = events.filter((e) => e.type !== 'layer-progress').map((e) => e.type)
      expect(steps[0]).toBe('verified')
      expect(steps.filter((t) => t === 'layer-start')).toHaveLength(2)
      expect(steps.filter((t) => t === 'layer')).toHaveLength(2)
      expect(steps.indexOf('layer-start')).toBeLessThan(steps.indexOf('layer'))
      expect(events.filter((e) => e.type === 'layer').every((e) => e.state === 'unpacked')).toBe(true)
      expect((await readdir(enc.rootfs)).sort()).toEqual(['layer-0', 'layer-1'])
      // The plaintext image has the same diff_ids: nothing to unpack; 4 concurrent pulls agree.
      const plain = await Promise.all(
        Array.from({ length: 4 }, () => c.pull(`docker://${reg.host}/app:plain`)),
      )
      for (const p of plain) expect(p).toMatchObject({ layers_unpacked: 0, layers_reused: 2 })
      const status = await c.status(`docker://${reg.host}/app:plain`)
      expect(status?.diff_ids).toHaveLength(2)
      expect(Number(status?.size)).toBeGreaterThan(0)
      expect((await c.list()).length).toBe(2)
      expect(await c.status('never/pulled:x')).toBeUndefined()
    } finally {
      c.close()
    }
  }, 120_000)

  it('refuses what the policy rejects, with the gRPC status of the error class', async () => {
    const r = await coffer(['image-service', 'pull', '--socket', socket, `${reg.host}/other:v2`])
    expect(r.code).toBe(7)
    expect(r.stderr).toMatch(/ERR_SIGN_POLICY_DENIED/)
  }, 60_000)

  it('remove then gc frees the layers no image uses', async () => {
    const c = connectImageService(socket)
    try {
      await c.remove(`${reg.host}/app:enc`)
      await c.remove(`docker://${reg.host}/app:plain`)
      await c.remove('never/pulled:x')
      expect(await c.list()).toEqual([])
    } finally {
      c.close()
    }
    const gc = await coffer(['image-service', 'gc', '--json', '--store', file('store')])
    expect(gc.code, gc.stderr).toBe(0)
    expect((gc.json()[0]!.removed as string[]).length).toBe(2)
  }, 60_000)

  it('gc waits for a pull the service is running, then deletes nothing it uses', async () => {
    const c = connectImageService(socket)
    try {
      const pulling = c.pull(`${proxy.host}/app:gated`)
      await proxy.reached
      const gc = spawn(
        process.execPath,
        [COFFER_BIN, 'image-service', 'gc', '--json', '--store', file('store')],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
      const lines = createInterface({ input: gc.stdout! })[Symbol.asyncIterator]()
      // Its first word is that it waits (without the store lock it would have finished by now).
      expect(JSON.parse(String((await lines.next()).value))).toEqual({ waiting: 1 })
      expect(gc.exitCode).toBeNull()
      proxy.open()
      expect(await pulling).toMatchObject({ layers_unpacked: 1 })
      expect(JSON.parse(String((await lines.next()).value))).toEqual({ removed: [] })
      expect(await new Promise((r) => gc.once('exit', r))).toBe(0)
      expect(await c.status(`${proxy.host}/app:gated`)).toMatchObject({ diff_ids: [expect.any(String)] })
    } finally {
      c.close()
    }
  }, 60_000)

  it('stops cleanly on SIGTERM and removes its socket', async () => {
    server.kill('SIGTERM')
    expect(await new Promise((r) => server.once('exit', r))).toBe(0)
    expect((await readdir(work)).includes('svc.sock')).toBe(false)
  })
})
