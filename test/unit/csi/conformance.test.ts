/**
 * Our own CSI conformance suite: what csi-sanity v5.3.1 checks for Identity, Node and the minimal
 * Controller (storage.md §3–4), against a real server on a unix socket in a temp dir, through a
 * real grpc-js client with coffer's csi.proto.
 *
 * Mounts are real kernel mounts (the suite runs as root), but the encrypted FUSE server is stood
 * in for: a "volume mount" is a bind mount of the backing directory and an ephemeral mount is a
 * tmpfs, so publish/unpublish, bind, read-only, mountinfo and statfs are all real. The same flows
 * with the real `coffer mount` are in test/integration/csi-mount.test.ts.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCliVolumeFormatter, createCliVolumeMounter } from '../../../lib/csi/cli-volume-mounter.js'
import { DRIVER_NAME, TOPOLOGY_NODE_KEY } from '../../../lib/csi/driver.js'
import { startCsiServer, type RunningCsiServer } from '../../../lib/csi/server.js'
import type { VolumeMounter } from '../../../lib/csi/volume-mounter.js'
import {
  BLOCK_RWO,
  codeOf,
  csiClient,
  grpc,
  MOUNT_RWO,
  MOUNT_RWOP,
  MOUNT_RWX,
  type CsiClient,
} from '../../helpers/csi-client.js'

const { INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION } = grpc.status

/** Real kernel mounts standing in for `coffer mount` (see the file comment). */
function kernelMounter(): VolumeMounter & { ephemeralBackings: string[] } {
  const real = createCliVolumeMounter()
  const ephemeralBackings: string[] = []
  return {
    ephemeralBackings,
    mountEphemeral: async (target, backing) => {
      ephemeralBackings.push(backing)
      await mkdir(backing, { recursive: true })
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'coffer-test', target])
    },
    mountVolume: async (backing, target) => execFileSync('mount', ['--bind', backing, target]) && undefined,
    unmountVolume: async (target) => execFileSync('umount', [target]) && undefined,
    bind: real.bind,
    unbind: real.unbind,
    isMounted: real.isMounted,
  }
}

/** The driver's own formatter (real gocryptfs.conf, cheap scrypt for tests). */
const formatter = createCliVolumeFormatter({ scryptLogN: 10 })

let work: string
let socket: string
let server: RunningCsiServer
let c: CsiClient
let mounter: ReturnType<typeof kernelMounter>
const stateDir = (): string => join(work, 'state')

async function start(): Promise<void> {
  server = await startCsiServer({
    endpoint: `unix://${socket}`,
    nodeId: 'node-a',
    vendorVersion: '0.1.0-test',
    stateDir: stateDir(),
    mounter,
    formatter,
    defaultKey: { kind: 'passphrase-file', path: join(work, 'pass.txt') },
  })
  c = csiClient(socket)
}

async function stop(): Promise<void> {
  c.close()
  await server.close()
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-csi-'))
  socket = join(work, 'csi', 'csi.sock')
  await writeFile(join(work, 'pass.txt'), 'node passphrase\n')
  await mkdir(join(work, 'mnt'))
  mounter = kernelMounter()
  await start()
})

afterAll(async () => {
  await stop()
  // Defense in depth: never leave a mount behind under the temp dir.
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
  for (const m of mounts.filter((m) => m.startsWith(work)).reverse()) execFileSync('umount', ['-l', m])
  await rm(work, { recursive: true, force: true })
})

const createReq = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  name,
  capacity_range: { required_bytes: 10 * 1024 * 1024 },
  volume_capabilities: [MOUNT_RWO],
  ...extra,
})

describe('Identity', () => {
  it('GetPluginInfo: a name that starts and ends with a letter, and a vendor version', async () => {
    const info = await c.identity.GetPluginInfo!()
    expect(info.name).toBe(DRIVER_NAME)
    expect(info.name).toMatch(/^[A-Za-z]([A-Za-z0-9.-]{0,61}[A-Za-z])?$/)
    expect(info.vendor_version).toBe('0.1.0-test')
  })

  it('GetPluginCapabilities: the controller service and topology, nothing unknown', async () => {
    const caps = (await c.identity.GetPluginCapabilities!()).capabilities as { service: { type: string } }[]
    expect(caps.map((x) => x.service.type).sort()).toEqual([
      'CONTROLLER_SERVICE',
      'VOLUME_ACCESSIBILITY_CONSTRAINTS',
    ])
  })

  it('Probe: ready', async () => {
    expect(await c.identity.Probe!()).toMatchObject({ ready: { value: true } })
  })
})

describe('Controller', () => {
  it('ControllerGetCapabilities: a non-empty list with CREATE_DELETE_VOLUME (csi-sanity needs it non-empty)', async () => {
    const caps = (await c.controller.ControllerGetCapabilities!()).capabilities as { rpc: { type: string } }[]
    expect(caps.map((x) => x.rpc.type)).toEqual(['CREATE_DELETE_VOLUME'])
  })

  it('methods not offered answer UNIMPLEMENTED', async () => {
    // ListVolumes is not in our proto: call it by path.
    const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure())
    const code = await new Promise<number>((resolve) =>
      client.makeUnaryRequest(
        '/csi.v1.Controller/ListVolumes',
        (x: Buffer) => x,
        (x: Buffer) => x,
        Buffer.alloc(0),
        (err) => resolve(err?.code ?? 0),
      ),
    )
    client.close()
    expect(code).toBe(grpc.status.UNIMPLEMENTED)
  })

  it('CreateVolume: name and capabilities are required; block, multi-node and unknown parameters are refused', async () => {
    expect(await codeOf(c.controller.CreateVolume!(createReq('')))).toBe(INVALID_ARGUMENT)
    expect(await codeOf(c.controller.CreateVolume!(createReq('v', { volume_capabilities: [] })))).toBe(
      INVALID_ARGUMENT,
    )
    expect(
      await codeOf(c.controller.CreateVolume!(createReq('v', { volume_capabilities: [BLOCK_RWO] }))),
    ).toBe(INVALID_ARGUMENT)
    expect(
      await codeOf(c.controller.CreateVolume!(createReq('v', { volume_capabilities: [MOUNT_RWX] }))),
    ).toBe(INVALID_ARGUMENT)
    expect(await codeOf(c.controller.CreateVolume!(createReq('v', { parameters: { keyURI: 'x' } })))).toBe(
      INVALID_ARGUMENT,
    )
    expect(
      await codeOf(c.controller.CreateVolume!(createReq('v', { parameters: { keyUri: 'kbs:///a/b' } }))),
    ).toBe(INVALID_ARGUMENT)
    expect(
      await codeOf(
        c.controller.CreateVolume!(
          createReq('v', { capacity_range: { required_bytes: 10, limit_bytes: 5 } }),
        ),
      ),
    ).toBe(INVALID_ARGUMENT)
    expect(await readdir(join(stateDir(), 'volumes'))).toEqual([])
  })

  it('CreateVolume: a formatted backing, node topology; same name and size is the same volume, another size ALREADY_EXISTS', async () => {
    const first = (await c.controller.CreateVolume!(createReq('pvc-1'))).volume as Record<string, unknown>
    expect(first.volume_id).toMatch(/^cv-[0-9a-f]{32}$/)
    expect(first.capacity_bytes).toBe(10 * 1024 * 1024)
    expect(first.accessible_topology).toEqual([{ segments: { [TOPOLOGY_NODE_KEY]: 'node-a' } }])
    const backing = join(stateDir(), 'volumes', first.volume_id as string, 'backing')
    expect((await readdir(backing)).sort()).toEqual(['gocryptfs.conf', 'gocryptfs.diriv'])

    const again = (await c.controller.CreateVolume!(createReq('pvc-1'))).volume as Record<string, unknown>
    expect(again.volume_id).toBe(first.volume_id)
    expect(
      await codeOf(c.controller.CreateVolume!(createReq('pvc-1', { capacity_range: { required_bytes: 1 } }))),
    ).toBe(ALREADY_EXISTS)
    await c.controller.DeleteVolume!({ volume_id: first.volume_id })
  })

  it('DeleteVolume: id required; unknown and repeated deletes are OK; the data is gone', async () => {
    expect(await codeOf(c.controller.DeleteVolume!({}))).toBe(INVALID_ARGUMENT)
    await c.controller.DeleteVolume!({ volume_id: 'cv-00000000000000000000000000000000' })
    await c.controller.DeleteVolume!({ volume_id: '../../etc' })
    const v = (await c.controller.CreateVolume!(createReq('pvc-del'))).volume as { volume_id: string }
    await c.controller.DeleteVolume!({ volume_id: v.volume_id })
    await c.controller.DeleteVolume!({ volume_id: v.volume_id })
    expect(await readdir(join(stateDir(), 'volumes'))).toEqual([])
  })

  it('ValidateVolumeCapabilities: arguments, NOT_FOUND, confirmed for mount, not for block', async () => {
    const v = (await c.controller.CreateVolume!(createReq('pvc-val'))).volume as { volume_id: string }
    expect(await codeOf(c.controller.ValidateVolumeCapabilities!({ volume_capabilities: [MOUNT_RWO] }))).toBe(
      INVALID_ARGUMENT,
    )
    expect(await codeOf(c.controller.ValidateVolumeCapabilities!({ volume_id: v.volume_id }))).toBe(
      INVALID_ARGUMENT,
    )
    expect(
      await codeOf(
        c.controller.ValidateVolumeCapabilities!({
          volume_id: 'cv-unknown',
          volume_capabilities: [MOUNT_RWO],
        }),
      ),
    ).toBe(NOT_FOUND)
    const ok = await c.controller.ValidateVolumeCapabilities!({
      volume_id: v.volume_id,
      volume_capabilities: [MOUNT_RWO],
    })
    expect((ok.confirmed as { volume_capabilities: unknown[] }).volume_capabilities).toHaveLength(1)
    const no = await c.controller.ValidateVolumeCapabilities!({
      volume_id: v.volume_id,
      volume_capabilities: [BLOCK_RWO],
    })
    expect(no.confirmed).toBeNull()
    expect(no.message).toContain('block')
    await c.controller.DeleteVolume!({ volume_id: v.volume_id })
  })
})

describe('Node', () => {
  it('NodeGetCapabilities: stage/unstage and volume stats, nothing unknown', async () => {
    const caps = (await c.node.NodeGetCapabilities!()).capabilities as { rpc: { type: string } }[]
    expect(caps.map((x) => x.rpc.type)).toEqual(['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS'])
  })

  it('NodeGetInfo: the node ID and its topology (required with VOLUME_ACCESSIBILITY_CONSTRAINTS)', async () => {
    expect(await c.node.NodeGetInfo!()).toMatchObject({
      node_id: 'node-a',
      accessible_topology: { segments: { [TOPOLOGY_NODE_KEY]: 'node-a' } },
    })
  })

  it('every required field is checked: INVALID_ARGUMENT', async () => {
    const staging = join(work, 'stg-args')
    const target = join(work, 'mnt', 'args')
    const n = c.node
    const cases: [string, Record<string, unknown>][] = [
      ['NodeStageVolume', { staging_target_path: staging, volume_capability: MOUNT_RWO }],
      ['NodeStageVolume', { volume_id: 'x', volume_capability: MOUNT_RWO }],
      ['NodeStageVolume', { volume_id: 'x', staging_target_path: staging }],
      ['NodeUnstageVolume', { staging_target_path: staging }],
      ['NodeUnstageVolume', { volume_id: 'x' }],
      [
        'NodePublishVolume',
        { target_path: target, staging_target_path: staging, volume_capability: MOUNT_RWO },
      ],
      ['NodePublishVolume', { volume_id: 'x', staging_target_path: staging, volume_capability: MOUNT_RWO }],
      ['NodePublishVolume', { volume_id: 'x', target_path: target, staging_target_path: staging }],
      ['NodePublishVolume', { volume_id: 'x', target_path: 'relative/t', volume_capability: MOUNT_RWO }],
      ['NodePublishVolume', { volume_id: 'x', target_path: `${work}/a/../b`, volume_capability: MOUNT_RWO }],
      ['NodeUnpublishVolume', { target_path: target }],
      ['NodeUnpublishVolume', { volume_id: 'x' }],
      ['NodeGetVolumeStats', { volume_path: target }],
      ['NodeGetVolumeStats', { volume_id: 'x' }],
    ]
    for (const [method, req] of cases)
      expect([method, await codeOf(n[method]!(req))]).toEqual([method, INVALID_ARGUMENT])
  })

  it('unknown volumes are NOT_FOUND, and a volume ID is never a path', async () => {
    const staging = join(work, 'stg-unknown')
    const target = join(work, 'mnt', 'unknown')
    for (const id of ['cv-00000000000000000000000000000000', '../../../../etc', 'cv-../x']) {
      expect(
        await codeOf(
          c.node.NodeStageVolume!({
            volume_id: id,
            staging_target_path: staging,
            volume_capability: MOUNT_RWO,
          }),
        ),
      ).toBe(NOT_FOUND)
      expect(
        await codeOf(
          c.node.NodePublishVolume!({
            volume_id: id,
            staging_target_path: staging,
            target_path: target,
            volume_capability: MOUNT_RWO,
          }),
        ),
      ).toBe(NOT_FOUND)
      expect(await codeOf(c.node.NodeGetVolumeStats!({ volume_id: id, volume_path: target }))).toBe(NOT_FOUND)
    }
  })

  it('stage → publish (twice, and to a second target, read-only) → stats → unpublish → unstage, idempotent at each step', async () => {
    const v = (await c.controller.CreateVolume!(createReq('pvc-flow'))).volume as { volume_id: string }
    const id = v.volume_id
    const staging = join(work, 'stg-flow')
    const t1 = join(work, 'mnt', 'flow-1')
    const t2 = join(work, 'mnt', 'flow-2')
    const stageReq = { volume_id: id, staging_target_path: staging, volume_capability: MOUNT_RWO }
    const pub = (target: string, readonly = false) => ({ ...stageReq, target_path: target, readonly })

    // Publish before stage: the volume must be staged first.
    expect(await codeOf(c.node.NodePublishVolume!(pub(t1)))).toBe(FAILED_PRECONDITION)
    expect(await codeOf(c.node.NodePublishVolume!({ ...pub(t1), staging_target_path: '' }))).toBe(
      FAILED_PRECONDITION,
    )

    await c.node.NodeStageVolume!(stageReq)
    await c.node.NodeStageVolume!(stageReq)
    expect(await mounter.isMounted(staging)).toBe(true)
    expect(
      await codeOf(c.node.NodeStageVolume!({ ...stageReq, staging_target_path: join(work, 'stg-other') })),
    ).toBe(ALREADY_EXISTS)

    await c.node.NodePublishVolume!(pub(t1))
    await c.node.NodePublishVolume!(pub(t1))
    await writeFile(join(t1, 'hello.txt'), 'from t1')
    // Same target, other arguments.
    expect(await codeOf(c.node.NodePublishVolume!(pub(t1, true)))).toBe(ALREADY_EXISTS)

    // A second target sees the same data; read-only is enforced by the kernel.
    await c.node.NodePublishVolume!(pub(t2, true))
    expect(await readFile(join(t2, 'hello.txt'), 'utf8')).toBe('from t1')
    await expect(writeFile(join(t2, 'nope'), 'x')).rejects.toMatchObject({ code: 'EROFS' })

    const stats = await c.node.NodeGetVolumeStats!({ volume_id: id, volume_path: t1 })
    const usage = stats.usage as { unit: string; total: number; available: number; used: number }[]
    expect(usage.map((u) => u.unit)).toEqual(['BYTES', 'INODES'])
    for (const u of usage) {
      expect(u.total).toBeGreaterThan(0)
      expect(u.available).toBeLessThanOrEqual(u.total)
    }
    expect(await codeOf(c.node.NodeGetVolumeStats!({ volume_id: id, volume_path: 'some/path' }))).toBe(
      NOT_FOUND,
    )
    expect(await codeOf(c.node.NodeGetVolumeStats!({ volume_id: id, volume_path: join(work, 'mnt') }))).toBe(
      NOT_FOUND,
    )

    // In use: neither unstage nor delete.
    expect(await codeOf(c.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: staging }))).toBe(
      FAILED_PRECONDITION,
    )
    expect(await codeOf(c.controller.DeleteVolume!({ volume_id: id }))).toBe(FAILED_PRECONDITION)

    for (const t of [t1, t2]) {
      await c.node.NodeUnpublishVolume!({ volume_id: id, target_path: t })
      await c.node.NodeUnpublishVolume!({ volume_id: id, target_path: t })
      expect(await mounter.isMounted(t)).toBe(false)
      await expect(stat(t)).rejects.toMatchObject({ code: 'ENOENT' })
    }
    await c.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: staging })
    await c.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: staging })
    expect(await mounter.isMounted(staging)).toBe(false)

    // Stage and publish again: the data persisted (in the backing, not the mount).
    await c.node.NodeStageVolume!(stageReq)
    await c.node.NodePublishVolume!(pub(t1))
    expect(await readFile(join(t1, 'hello.txt'), 'utf8')).toBe('from t1')
    await c.node.NodeUnpublishVolume!({ volume_id: id, target_path: t1 })
    await c.node.NodeUnstageVolume!({ volume_id: id, staging_target_path: staging })
    await c.controller.DeleteVolume!({ volume_id: id })
  })

  it('SINGLE_NODE_SINGLE_WRITER: a second target is FAILED_PRECONDITION', async () => {
    const v = (await c.controller.CreateVolume!(createReq('pvc-rwop', { volume_capabilities: [MOUNT_RWOP] })))
      .volume as { volume_id: string }
    const staging = join(work, 'stg-rwop')
    const base = { volume_id: v.volume_id, staging_target_path: staging, volume_capability: MOUNT_RWOP }
    await c.node.NodeStageVolume!(base)
    await c.node.NodePublishVolume!({ ...base, target_path: join(work, 'mnt', 'rwop-1') })
    expect(
      await codeOf(c.node.NodePublishVolume!({ ...base, target_path: join(work, 'mnt', 'rwop-2') })),
    ).toBe(FAILED_PRECONDITION)
    await c.node.NodeUnpublishVolume!({ volume_id: v.volume_id, target_path: join(work, 'mnt', 'rwop-1') })
    await c.node.NodeUnstageVolume!({ volume_id: v.volume_id, staging_target_path: staging })
    await c.controller.DeleteVolume!({ volume_id: v.volume_id })
  })

  it('ephemeral inline volumes: mounted at the target, idempotent, gone with their backing at unpublish', async () => {
    const target = join(work, 'mnt', 'eph')
    const req = {
      volume_id: 'csi-4f2e0c0e3b7a',
      target_path: target,
      volume_capability: MOUNT_RWO,
      volume_context: { 'csi.storage.k8s.io/ephemeral': 'true', 'csi.storage.k8s.io/pod.name': 'p' },
    }
    await c.node.NodePublishVolume!(req)
    await c.node.NodePublishVolume!(req)
    expect(await mounter.isMounted(target)).toBe(true)
    await writeFile(join(target, 'scratch'), 'x')
    const backing = mounter.ephemeralBackings.at(-1)!
    expect(backing.startsWith(join(stateDir(), 'ephemeral'))).toBe(true)
    expect(await codeOf(c.node.NodePublishVolume!({ ...req, readonly: true }))).toBe(ALREADY_EXISTS)
    await c.node.NodeUnpublishVolume!({ volume_id: req.volume_id, target_path: target })
    await c.node.NodeUnpublishVolume!({ volume_id: req.volume_id, target_path: target })
    expect(await mounter.isMounted(target)).toBe(false)
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' })
    await expect(stat(backing)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('unpublishing a target that holds another volume is NOT_FOUND and leaves it mounted', async () => {
    const target = join(work, 'mnt', 'other')
    const req = {
      volume_id: 'csi-one',
      target_path: target,
      volume_capability: MOUNT_RWO,
      volume_context: { 'csi.storage.k8s.io/ephemeral': 'true' },
    }
    await c.node.NodePublishVolume!(req)
    expect(await codeOf(c.node.NodeUnpublishVolume!({ volume_id: 'csi-two', target_path: target }))).toBe(
      NOT_FOUND,
    )
    expect(await mounter.isMounted(target)).toBe(true)
    await c.node.NodeUnpublishVolume!({ volume_id: 'csi-one', target_path: target })
  })

  it('a restarted driver remembers what it mounted and can undo it', async () => {
    const v = (await c.controller.CreateVolume!(createReq('pvc-restart'))).volume as { volume_id: string }
    const staging = join(work, 'stg-restart')
    const target = join(work, 'mnt', 'restart')
    const base = { volume_id: v.volume_id, staging_target_path: staging, volume_capability: MOUNT_RWO }
    await c.node.NodeStageVolume!(base)
    await c.node.NodePublishVolume!({ ...base, target_path: target })
    await stop()
    await start()
    await c.node.NodePublishVolume!({ ...base, target_path: target }) // still the same publication
    await c.node.NodeUnpublishVolume!({ volume_id: v.volume_id, target_path: target })
    await c.node.NodeUnstageVolume!({ volume_id: v.volume_id, staging_target_path: staging })
    expect(await mounter.isMounted(staging)).toBe(false)
    await c.controller.DeleteVolume!({ volume_id: v.volume_id })
  })

  it('a failed ephemeral mount leaves no target directory and no backing behind', async () => {
    const target = join(work, 'mnt', 'eph-fail')
    const failing = mounter.mountEphemeral
    mounter.mountEphemeral = async () => {
      throw new Error('mount failed')
    }
    try {
      const code = await codeOf(
        c.node.NodePublishVolume!({
          volume_id: 'csi-fails',
          target_path: target,
          volume_capability: MOUNT_RWO,
          volume_context: { 'csi.storage.k8s.io/ephemeral': 'true' },
        }),
      )
      expect(code).toBe(grpc.status.INTERNAL)
    } finally {
      mounter.mountEphemeral = failing
    }
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' })
    expect(await readdir(join(stateDir(), 'ephemeral'))).toEqual([])
  })
})
