/**
 * `coffer csi serve` as kubelet and external-provisioner meet it: the built binary on a unix
 * socket, a real grpc-js client, and CreateVolume formatting backings with the real
 * gocryptfs format, with the node passphrase file or with a passphrase held by a real KBS (sample
 * attester) that `coffer kbs get-resource` fetches and hands over through its stdout pipe only.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openVolume } from '../../lib/storage/open-volume.js'
import { coffer, COFFER_BIN } from '../helpers/coffer.js'
import { codeOf, csiClient, grpc, MOUNT_RWO, type CsiClient } from '../helpers/csi-client.js'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'

/** Sample guests may read volume passphrases (tests only: the sample attester proves nothing). */
const VOLUME_POLICY = JSON.stringify({
  version: 'coffer.dev/kbs-resource-policy/v1',
  rules: [{ name: 'volume keys', effect: 'allow', resources: ['default/volume/*'], when: 'tee == "sample"' }],
})

let work: string
let kbs: TestKbs
let driver: ChildProcess
let socket: string
let c: CsiClient
let driverExit: Promise<number | null>

/** Starts the driver and resolves with its first --json line. */
function startDriver(args: string[]): Promise<Record<string, unknown>> {
  driver = spawn(process.execPath, [COFFER_BIN, 'csi', 'serve', ...args, '--json'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  driverExit = new Promise((res) => driver.on('exit', (code) => res(code)))
  return new Promise((resolve, reject) => {
    let buf = ''
    driver.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buf += chunk
      const nl = buf.indexOf('\n')
      if (nl !== -1) resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>)
    })
    driver.on('exit', (code) => reject(new Error(`coffer csi serve exited with ${code}`)))
  })
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-csiserve-'))
  socket = join(work, 'plugin', 'csi.sock')
  await writeFile(join(work, 'node-pass'), 'node wide passphrase\n')
  kbs = await startTestKbs()
  const ready = await startDriver([
    '--endpoint',
    `unix://${socket}`,
    '--node-id',
    'node-1',
    '--state-dir',
    join(work, 'state'),
    '--passphrase-file',
    join(work, 'node-pass'),
  ])
  expect(ready).toMatchObject({ listening: socket, driver: 'csi.coffer.dev', nodeId: 'node-1' })
  c = csiClient(socket)
})

afterAll(async () => {
  c?.close()
  if (driver && driver.exitCode === null) driver.kill('SIGKILL')
  await kbs?.close()
  await rm(work, { recursive: true, force: true })
})

describe('coffer csi serve', () => {
  it('usage: --node-id is required, the endpoint must be a unix socket, help has examples', async () => {
    const noNode = await coffer(['csi', 'serve', '--endpoint', `unix://${work}/x.sock`], {
      env: { CSI_NODE_ID: '' },
    })
    expect(noNode.code).toBe(2)
    expect(noNode.stderr).toContain('--node-id is required')
    const tcp = await coffer([
      'csi',
      'serve',
      '--endpoint',
      'tcp://127.0.0.1:9000',
      '--node-id',
      'n',
      '--state-dir',
      join(work, 's2'),
    ])
    expect(tcp.code).toBe(2)
    expect(tcp.stderr).toContain('[ERR_CSI_ENDPOINT_INVALID]')
    const help = await coffer(['csi', 'serve', '--help'])
    expect(help.stdout).toContain('Examples:\n  coffer csi serve --endpoint unix:///csi/csi.sock')
  })

  it('answers Identity on the socket', async () => {
    expect(await c.identity.GetPluginInfo!()).toMatchObject({
      name: 'csi.coffer.dev',
      vendor_version: '0.1.0',
    })
    expect(await c.identity.Probe!()).toMatchObject({ ready: { value: true } })
  })

  it('CreateVolume without keyUri: a gocryptfs volume under the node passphrase', async () => {
    const v = (await c.controller.CreateVolume!({ name: 'pvc-node', volume_capabilities: [MOUNT_RWO] }))
      .volume as { volume_id: string }
    const backing = join(work, 'state', 'volumes', v.volume_id, 'backing')
    const vol = await openVolume(backing, Buffer.from('node wide passphrase'))
    vol.close()
    await c.controller.DeleteVolume!({ volume_id: v.volume_id })
    await expect(stat(backing)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('CreateVolume with keyUri: the passphrase is the KBS resource, fetched after attestation', async () => {
    const uri = 'kbs:///default/volume/pvc-kbs'
    await writeFile(join(work, 'res'), 'passphrase from the kbs\nsecond line ignored\n')
    const admin = ['--url', kbs.url, '--admin-key', kbs.adminPrivateKeyPath]
    const put = await coffer(['kbs', 'put-resource', uri, '--file', join(work, 'res'), ...admin])
    expect(put.code, put.stderr).toBe(0)
    await writeFile(join(work, 'policy.json'), VOLUME_POLICY)
    const pol = await coffer(['kbs', 'set-policy', join(work, 'policy.json'), ...admin])
    expect(pol.code, pol.stderr).toBe(0)
    const params = { keyUri: uri, kbsUrl: kbs.url, attester: 'sample' }
    const v = (
      await c.controller.CreateVolume!({
        name: 'pvc-kbs',
        volume_capabilities: [MOUNT_RWO],
        parameters: params,
      })
    ).volume as { volume_id: string; volume_context: Record<string, string> }
    expect(v.volume_context).toEqual({ keyUri: uri })
    const backing = join(work, 'state', 'volumes', v.volume_id, 'backing')
    const vol = await openVolume(backing, Buffer.from('passphrase from the kbs'))
    vol.close()
    await c.controller.DeleteVolume!({ volume_id: v.volume_id })
  })

  it('CreateVolume with a key the KBS lacks or refuses fails with a telling status and leaves nothing behind', async () => {
    const create = (keyUri: string, kbsUrl = kbs.url) =>
      codeOf(
        c.controller.CreateVolume!({
          name: 'pvc-no-key',
          volume_capabilities: [MOUNT_RWO],
          parameters: { keyUri, kbsUrl, attester: 'sample' },
        }),
      )
    expect(await create('kbs:///default/volume/missing')).toBe(grpc.status.FAILED_PRECONDITION)
    expect(await create('kbs:///default/other/denied')).toBe(grpc.status.PERMISSION_DENIED)
    expect(await create('kbs:///default/volume/x', 'http://127.0.0.1:9')).toBe(grpc.status.UNAVAILABLE)
    expect(await readdir(join(work, 'state', 'volumes'))).toEqual([])
  })

  it('SIGTERM stops it: exit 0, socket removed', async () => {
    driver.kill('SIGTERM')
    expect(await driverExit).toBe(0)
    await expect(stat(socket)).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
