/**
 * CSI Node: mounts coffer volumes where kubelet asks.
 *
 *   persistent:  NodeStageVolume   → `coffer mount --volume` at the staging path (one FUSE server per volume)
 *                NodePublishVolume → bind mount staging path → target (read-only if asked)
 *   ephemeral:   NodePublishVolume → `coffer mount --ephemeral` at the target (random key, memory only)
 *   undo:        NodeUnpublishVolume / NodeUnstageVolume, each idempotent: nothing left to undo is OK.
 *
 * Every call is serialised per volume (KeyedLock) and answers a repeat of a finished call with OK,
 * so kubelet's retries are safe. Paths must be absolute and normal (arguments.ts).
 */
import { createHash } from 'node:crypto'
import { mkdir, rm, rmdir, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import { CofferError } from '../util/errors.js'
import { required, requiredPath } from './arguments.js'
import { isReaderOnly, isSingleWriter, requireSupported } from './capabilities.js'
import { EPHEMERAL_CONTEXT_KEY, nodeTopology, type DriverSettings } from './driver.js'
import type { KeyedLock } from './keyed-lock.js'
import type {
  NodeGetVolumeStatsRequest,
  NodePublishVolumeRequest,
  NodeStageVolumeRequest,
  NodeUnpublishVolumeRequest,
  NodeUnstageVolumeRequest,
  VolumeCapabilityMsg,
} from './messages.js'
import type { MountRecord, NodeState } from './node-state.js'
import type { VolumeMounter } from './volume-mounter.js'
import type { VolumeStore } from './volume-store.js'

export interface NodeDeps {
  settings: DriverSettings
  volumes: VolumeStore
  node: NodeState
  mounter: VolumeMounter
  locks: KeyedLock
  /** Where ephemeral volumes keep their ciphertext while mounted. */
  ephemeralDir: string
}

export function nodeService(d: NodeDeps) {
  return {
    NodeGetCapabilities: async () => ({
      capabilities: [{ rpc: { type: 'STAGE_UNSTAGE_VOLUME' } }, { rpc: { type: 'GET_VOLUME_STATS' } }],
    }),

    NodeGetInfo: async () => ({
      node_id: d.settings.nodeId,
      max_volumes_per_node: 0,
      accessible_topology: nodeTopology(d.settings.nodeId),
    }),

    NodeStageVolume: async (req: NodeStageVolumeRequest, signal: AbortSignal) => {
      const volumeId = required(req.volume_id, 'volume_id')
      const staging = requiredPath(req.staging_target_path, 'staging_target_path')
      const cap = requiredCapability(req.volume_capability)
      requireSupported([cap], 'ERR_CSI_CAPABILITY_EXCEEDED')
      await d.locks.run(volumeId, async () => {
        const volume = await d.volumes.get(volumeId)
        if (!volume) throw new CofferError('ERR_CSI_VOLUME_NOT_FOUND', `volume ${volumeId} does not exist`)
        const elsewhere = d.node.ofVolume(volumeId).find((r) => r.kind === 'staged' && r.path !== staging)
        if (elsewhere)
          throw new CofferError(
            'ERR_CSI_VOLUME_CONFLICT',
            `volume ${volumeId} is staged at ${elsewhere.path}`,
          )
        const fingerprint = fingerprintOf({ volumeId, staged: true })
        if (await existing(d, staging, volumeId, fingerprint)) return
        await mkdir(staging, { recursive: true })
        await d.mounter.mountVolume(d.volumes.backingOf(volumeId), staging, volume.key, { signal })
        await d.node.put({ path: staging, volumeId, kind: 'staged', readonly: false, fingerprint })
      })
      return {}
    },

    NodeUnstageVolume: async (req: NodeUnstageVolumeRequest, signal: AbortSignal) => {
      const volumeId = required(req.volume_id, 'volume_id')
      const staging = requiredPath(req.staging_target_path, 'staging_target_path')
      await d.locks.run(volumeId, async () => {
        const record = d.node.get(staging)
        if (record && record.volumeId !== volumeId)
          throw new CofferError(
            'ERR_CSI_VOLUME_NOT_FOUND',
            `${staging} holds volume ${record.volumeId}, not ${volumeId}`,
          )
        const bound = d.node.ofVolume(volumeId).find((r) => r.kind === 'bound')
        if (bound)
          throw new CofferError(
            'ERR_CSI_VOLUME_IN_USE',
            `volume ${volumeId} is still published at ${bound.path}`,
          )
        if (record && (await d.mounter.isMounted(staging))) await d.mounter.unmountVolume(staging, { signal })
        await d.node.remove(staging)
      })
      return {}
    },

    NodePublishVolume: async (req: NodePublishVolumeRequest, signal: AbortSignal) => {
      const volumeId = required(req.volume_id, 'volume_id')
      const target = requiredPath(req.target_path, 'target_path')
      const cap = requiredCapability(req.volume_capability)
      requireSupported([cap], 'ERR_CSI_CAPABILITY_UNSUPPORTED')
      const readonly = req.readonly || isReaderOnly(cap)
      const ephemeral = req.volume_context[EPHEMERAL_CONTEXT_KEY] === 'true'
      await d.locks.run(volumeId, () =>
        ephemeral
          ? publishEphemeral(d, volumeId, target, readonly, signal)
          : publishPersistent(d, req, volumeId, target, cap, readonly, signal),
      )
      return {}
    },

    NodeUnpublishVolume: async (req: NodeUnpublishVolumeRequest, signal: AbortSignal) => {
      const volumeId = required(req.volume_id, 'volume_id')
      const target = requiredPath(req.target_path, 'target_path')
      await d.locks.run(volumeId, async () => {
        const record = d.node.get(target)
        if (record && record.volumeId !== volumeId)
          throw new CofferError(
            'ERR_CSI_VOLUME_NOT_FOUND',
            `${target} holds volume ${record.volumeId}, not ${volumeId}`,
          )
        if (record?.kind === 'staged')
          throw new CofferError(
            'ERR_CSI_ARGUMENT_INVALID',
            `${target} is a staging path: use NodeUnstageVolume`,
          )
        if (record && (await d.mounter.isMounted(target))) {
          if (record.kind === 'ephemeral') await d.mounter.unmountVolume(target, { signal })
          else await d.mounter.unbind(target, { signal })
        }
        // The spec: the SP MUST delete the file or directory it created at target_path.
        await rmdir(target).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err
        })
        if (record?.backing) await rm(record.backing, { recursive: true, force: true })
        await d.node.remove(target)
      })
      return {}
    },

    NodeGetVolumeStats: async (req: NodeGetVolumeStatsRequest) => {
      const volumeId = required(req.volume_id, 'volume_id')
      required(req.volume_path, 'volume_path')
      const record = d.node.get(req.volume_path)
      if (!record || record.volumeId !== volumeId || !(await d.mounter.isMounted(record.path)))
        throw new CofferError(
          'ERR_CSI_VOLUME_NOT_FOUND',
          `volume ${volumeId} is not mounted at ${req.volume_path}`,
        )
      const s = await statfs(record.path, { bigint: false })
      return {
        usage: [
          {
            unit: 'BYTES',
            total: s.blocks * s.bsize,
            available: s.bavail * s.bsize,
            used: (s.blocks - s.bfree) * s.bsize,
          },
          { unit: 'INODES', total: s.files, available: s.ffree, used: Math.max(0, s.files - s.ffree) },
        ],
      }
    },
  }
}

function requiredCapability(cap: VolumeCapabilityMsg | null): VolumeCapabilityMsg {
  if (!cap) throw new CofferError('ERR_CSI_ARGUMENT_MISSING', 'volume_capability is required')
  return cap
}

function fingerprintOf(v: Record<string, unknown>): string {
  return JSON.stringify(v)
}

/**
 * Whether `path` already holds exactly this mount (an idempotent repeat: true), nothing (false),
 * or something else (ERR_CSI_VOLUME_CONFLICT). A record whose mount died is forgotten.
 */
async function existing(d: NodeDeps, path: string, volumeId: string, fingerprint: string): Promise<boolean> {
  const record = d.node.get(path)
  if (!record) return false
  if (record.volumeId !== volumeId || record.fingerprint !== fingerprint)
    throw new CofferError('ERR_CSI_VOLUME_CONFLICT', `${path} is already published with other arguments`)
  if (await d.mounter.isMounted(path)) return true
  await d.node.remove(path)
  return false
}

async function publishEphemeral(
  d: NodeDeps,
  volumeId: string,
  target: string,
  readonly: boolean,
  signal: AbortSignal,
): Promise<void> {
  const fingerprint = fingerprintOf({ volumeId, ephemeral: true, readonly })
  if (await existing(d, target, volumeId, fingerprint)) return
  // A fresh, empty backing: anything left from a crash was encrypted with a key that is gone.
  const backing = join(
    d.ephemeralDir,
    createHash('sha256').update(`${volumeId}\0${target}`).digest('hex').slice(0, 32),
  )
  await rm(backing, { recursive: true, force: true })
  await mkdir(target, { recursive: true })
  try {
    await d.mounter.mountEphemeral(target, backing, { signal })
  } catch (err) {
    // kubelet may not retry an inline volume: leave nothing behind (KEP-596).
    await undoTarget(target)
    await rm(backing, { recursive: true, force: true })
    throw err
  }
  const record: MountRecord = { path: target, volumeId, kind: 'ephemeral', readonly, fingerprint, backing }
  await d.node.put(record)
}

async function publishPersistent(
  d: NodeDeps,
  req: NodePublishVolumeRequest,
  volumeId: string,
  target: string,
  cap: VolumeCapabilityMsg,
  readonly: boolean,
  signal: AbortSignal,
): Promise<void> {
  if (!(await d.volumes.get(volumeId)))
    throw new CofferError('ERR_CSI_VOLUME_NOT_FOUND', `volume ${volumeId} does not exist`)
  if (req.staging_target_path === '')
    throw new CofferError(
      'ERR_CSI_NOT_STAGED',
      'staging_target_path is required: the volume must be staged first',
    )
  const staging = requiredPath(req.staging_target_path, 'staging_target_path')
  const staged = d.node.get(staging)
  if (staged?.kind !== 'staged' || staged.volumeId !== volumeId || !(await d.mounter.isMounted(staging)))
    throw new CofferError('ERR_CSI_NOT_STAGED', `volume ${volumeId} is not staged at ${staging}`)
  const fingerprint = fingerprintOf({ volumeId, staging, readonly, mode: cap.access_mode?.mode })
  if (await existing(d, target, volumeId, fingerprint)) return
  const others = d.node.ofVolume(volumeId).filter((r) => r.kind === 'bound' && r.path !== target)
  if (
    others.length &&
    (isSingleWriter(cap) || others.some((r) => r.fingerprint.includes('SINGLE_NODE_SINGLE_WRITER')))
  )
    throw new CofferError(
      'ERR_CSI_CAPABILITY_EXCEEDED',
      `volume ${volumeId} is single-writer and published at ${others[0]!.path}`,
    )
  await mkdir(target, { recursive: true })
  try {
    await d.mounter.bind(staging, target, readonly, { signal })
  } catch (err) {
    if (await d.mounter.isMounted(target)) await d.mounter.unbind(target).catch(() => {})
    await undoTarget(target)
    throw err
  }
  await d.node.put({ path: target, volumeId, kind: 'bound', readonly, fingerprint })
}

/** Removes a target directory a failed publish created; one that is not empty (or gone) stays as it is. */
async function undoTarget(target: string): Promise<void> {
  await rmdir(target).catch(() => {})
}
