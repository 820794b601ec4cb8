/**
 * The CSI node service with the real `coffer mount` (issue 8's CLI contract): the built driver
 * stages persistent volumes as coffer FUSE mounts and binds them into targets, and mounts inline
 * ephemeral volumes with `coffer mount --ephemeral`. Publish → write → unpublish → publish again:
 * data persists for persistent volumes and is gone for ephemeral ones; a second target works.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseMountPoints } from '../../lib/csi/mountinfo.js'
import { coffer, COFFER_BIN } from '../helpers/coffer.js'
import { csiClient, MOUNT_RWO, type CsiClient } from '../helpers/csi-client.js'
import { startTestKbs, type TestKbs } from '../helpers/kbs.js'

let work: string
let kbs: TestKbs
let driver: ChildProcess
let c: CsiClient

const mountPoints = async (): Promise<Set<string>> =>
  parseMountPoints(await readFile('/proc/self/mountinfo', 'utf8'))

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-csimount-'))
  await writeFile(join(work, 'node-pass'), 'node passphrase\n')
  await mkdir(join(work, 'pods'))
  kbs = await startTestKbs()
  const socket = join(work, 'plugin', 'csi.sock')
  driver = spawn(
    process.execPath,
    [
      COFFER_BIN,
      'csi',
      'serve',
      '--endpoint',
      `unix://${socket}`,
      '--node-id',
      'node-1',
      '--state-dir',
      join(work, 'state'),
      '--passphrase-file',
      join(work, 'node-pass'),
      '--json',
    ],
    // The mount servers' state (coffer mount --list) stays inside the test's directory.
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, COFFER_MOUNT_STATE_DIR: join(work, 'mounts') },
    },
  )
  await new Promise<void>((resolve, reject) => {
    driver.stdout!.once('data', () => resolve())
    driver.once('exit', (code) => reject(new Error(`coffer csi serve exited with ${code}`)))
  })
  c = csiClient(socket)
})

afterAll(async () => {
  c?.close()
  // Defense in depth: whatever a failed test left mounted under work is detached.
  for (const m of [...(await mountPoints())].filter((m) => m.startsWith(`${work}/`)).reverse())
    execFileSync('umount', ['-l', m])
  if (driver && driver.exitCode === null) driver.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 500))
  await kbs?.close()
  await rm(work, { recursive: true, force: true })
})

describe('CSI node with coffer mount', () => {
  it('persistent: data written through one publication is there after unpublish, re-publish, a second target and a re-stage; the backing holds only ciphertext', async () => {
    const v = (await c.controller.CreateVolume!({ name: 'pvc-data', volume_capabilities: [MOUNT_RWO] }))
      .volume as {
      volume_id: string
    }
    const id = v.volume_id
    const staging = join(work, 'staging', id)
    const t1 = join(work, 'pods', 'a', 'vol')
    const t2 = join(work, 'pods', 'b', 'vol')
    await mkdir(join(work, 'pods', 'a'), { recursive: true })
    await mkdir(join(work, 'pods', 'b'), { recursive: true })
    const stage = { volume_id: id, staging_target_path: staging, volume_capability: MOUNT_RWO }
    const pub = (target: string) => ({ ...stage, target_path: target })

    await c.node.NodeStageVolume!(stage)
    expect((await mountPoints()).has(staging)).toBe(true)
    await c.node.NodePublishVolume!(pub(t1))
    await writeFile(join(t1, 'secret-name.txt'), 'persistent data')
    await c.node.NodeUnpublishVolume!({ volume_id: id, target_path: t1 })
    await expect(stat(t1)).rejects.toMatchObject({ code: 'ENOENT' })

    await c.node.NodePublishVolume!(pub(t1))
    expect(await readFile(join(t1, 'secret-name.txt'), 'utf8')).toBe('persistent data')
    await c.node.NodePublishVolume!(pub(t2))
    expect(await readFile(join(t2, 'secret-name.txt'), 'utf8')).toBe('persistent data')
    await writeFile(join(t2, 'second.txt'), 'from b')
    expect(await readFile(join(t1, 'second.txt'), 'utf8')).toBe('from b')

    const stats = await c.node.NodeGetVolumeStats!({ volume_id: id, volume_path: t1 })
    expect((stats.usage as { unit: string; total: number }[])[0]).toMatchObject({ unit: 'BYTES' })

    for (const t of [t1, t2]) await c.node.NodeUnpublishVolume!({ volume_id: id, target_path: t })
    await c.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: staging })
    expect((await mountPoints()).has(staging)).toBe(false)

    const backing = join(work, 'state', 'volumes', id, 'backing')
    const names = await readdir(backing)
    expect(names).toContain('gocryptfs.conf')
    expect(names.join(' ')).not.toContain('secret-name')
    for (const n of names.filter((n) => !n.startsWith('gocryptfs.')))
      expect((await readFile(join(backing, n))).includes(Buffer.from('persistent data'))).toBe(false)

    await c.node.NodeStageVolume!(stage)
    await c.node.NodePublishVolume!(pub(t1))
    expect(await readFile(join(t1, 'secret-name.txt'), 'utf8')).toBe('persistent data')
    await c.node.NodeUnpublishVolume!({ volume_id: id, target_path: t1 })
    await c.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: staging })
    await c.controller.DeleteVolume!({ volume_id: id })
  })

  it('ephemeral: a fresh empty volume on every publish; unpublish removes its ciphertext', async () => {
    const target = join(work, 'pods', 'e', 'scratch')
    await mkdir(join(work, 'pods', 'e'), { recursive: true })
    const req = {
      volume_id: 'csi-ephemeral-1',
      target_path: target,
      volume_capability: MOUNT_RWO,
      volume_context: { 'csi.storage.k8s.io/ephemeral': 'true' },
    }
    await c.node.NodePublishVolume!(req)
    expect((await mountPoints()).has(target)).toBe(true)
    await writeFile(join(target, 'tmp.txt'), 'ephemeral data')
    const backings = await readdir(join(work, 'state', 'ephemeral'))
    expect(backings).toHaveLength(1)
    await c.node.NodeUnpublishVolume!({ volume_id: req.volume_id, target_path: target })
    expect((await mountPoints()).has(target)).toBe(false)
    expect(await readdir(join(work, 'state', 'ephemeral'))).toEqual([])

    await c.node.NodePublishVolume!(req)
    expect(await readdir(target)).toEqual([])
    await c.node.NodeUnpublishVolume!({ volume_id: req.volume_id, target_path: target })
  })

  it('persistent with keyUri: the mount server itself attests and fetches the passphrase from the KBS', async () => {
    const uri = 'kbs:///default/volume/pvc-kbs'
    const admin = ['--url', kbs.url, '--admin-key', kbs.adminPrivateKeyPath]
    await writeFile(join(work, 'res'), 'volume passphrase from the kbs\n')
    await writeFile(
      join(work, 'policy.json'),
      JSON.stringify({
        version: 'coffer.dev/kbs-resource-policy/v1',
        rules: [
          { name: 'volumes', effect: 'allow', resources: ['default/volume/*'], when: 'tee == "sample"' },
        ],
      }),
    )
    expect((await coffer(['kbs', 'put-resource', uri, '--file', join(work, 'res'), ...admin])).code).toBe(0)
    expect((await coffer(['kbs', 'set-policy', join(work, 'policy.json'), ...admin])).code).toBe(0)
    const v = (
      await c.controller.CreateVolume!({
        name: 'pvc-kbs',
        volume_capabilities: [MOUNT_RWO],
        parameters: { keyUri: uri, kbsUrl: kbs.url, attester: 'sample' },
      })
    ).volume as { volume_id: string }
    const staging = join(work, 'staging', v.volume_id)
    const target = join(work, 'pods', 'k', 'vol')
    await mkdir(join(work, 'pods', 'k'), { recursive: true })
    const stage = { volume_id: v.volume_id, staging_target_path: staging, volume_capability: MOUNT_RWO }
    for (const round of [1, 2]) {
      await c.node.NodeStageVolume!(stage)
      await c.node.NodePublishVolume!({ ...stage, target_path: target })
      if (round === 1) await writeFile(join(target, 'kbs.txt'), 'unlocked by the kbs')
      else expect(await readFile(join(target, 'kbs.txt'), 'utf8')).toBe('unlocked by the kbs')
      await c.node.NodeUnpublishVolume!({ volume_id: v.volume_id, target_path: target })
      await c.node.NodeUnstageVolume!({ volume_id: v.volume_id, staging_target_path: staging })
    }
    await c.controller.DeleteVolume!({ volume_id: v.volume_id })
  })
})
