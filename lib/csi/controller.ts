/**
 * The minimal CSI Controller of a node-local driver (storage.md §3.3): external-provisioner, run
 * beside the node plugin (`--node-deployment`), calls CreateVolume/DeleteVolume on the node that
 * will host the volume; csi-sanity needs ControllerGetCapabilities and ValidateVolumeCapabilities.
 *
 * StorageClass parameters: `keyUri` (kbs:///repo/type/tag, the volume's passphrase, fetched after
 * attestation), with optional `kbsUrl` and `attester`; without `keyUri`, the driver's
 * `--passphrase-file`. The key is needed here already, because CreateVolume writes gocryptfs.conf.
 */
import { CofferError } from '../util/errors.js'
import { required } from './arguments.js'
import { requireSupported, unsupportedReason } from './capabilities.js'
import { nodeTopology, type DriverSettings } from './driver.js'
import type { KeyedLock } from './keyed-lock.js'
import type {
  CreateVolumeRequest,
  DeleteVolumeRequest,
  StringMap,
  ValidateVolumeCapabilitiesRequest,
} from './messages.js'
import type { NodeState } from './node-state.js'
import type { VolumeKey } from './volume-mounter.js'
import type { VolumeStore } from './volume-store.js'

/** Parameters external-provisioner passes through; ours are the rest. */
const K8S_PARAMETER_PREFIX = 'csi.storage.k8s.io/'
const OUR_PARAMETERS = new Set(['keyUri', 'kbsUrl', 'attester'])
/** kbs:///repo/type/tag; `coffer` checks the rest when it fetches it. */
const KBS_URI = /^kbs:\/\/\/[^/\s]+\/[^/\s]+\/[^/\s]+$/

export interface ControllerDeps {
  settings: DriverSettings
  volumes: VolumeStore
  node: NodeState
  locks: KeyedLock
}

export function controllerService(d: ControllerDeps) {
  return {
    ControllerGetCapabilities: async () => ({ capabilities: [{ rpc: { type: 'CREATE_DELETE_VOLUME' } }] }),

    CreateVolume: async (req: CreateVolumeRequest, signal: AbortSignal) => {
      const name = required(req.name, 'name')
      if (req.volume_capabilities.length === 0)
        throw new CofferError('ERR_CSI_ARGUMENT_MISSING', 'volume_capabilities is required')
      requireSupported(req.volume_capabilities, 'ERR_CSI_CAPABILITY_UNSUPPORTED')
      const capacity = capacityOf(req.capacity_range)
      const key = keyOf(req.parameters, d.settings.defaultKey)
      const volumeId = d.volumes.idFor(name)
      const { record } = await d.locks.run(volumeId, () => d.volumes.create(name, capacity, key, { signal }))
      return {
        volume: {
          volume_id: record.volumeId,
          capacity_bytes: record.capacityBytes,
          volume_context: record.key.kind === 'kbs' ? { keyUri: record.key.uri } : {},
          accessible_topology: [nodeTopology(d.settings.nodeId)],
        },
      }
    },

    DeleteVolume: async (req: DeleteVolumeRequest) => {
      const volumeId = required(req.volume_id, 'volume_id')
      await d.locks.run(volumeId, async () => {
        const users = d.node.ofVolume(volumeId)
        if (users.length)
          throw new CofferError(
            'ERR_CSI_VOLUME_IN_USE',
            `volume ${volumeId} is still mounted at ${users[0]!.path}`,
          )
        await d.volumes.delete(volumeId)
      })
      return {}
    },

    ValidateVolumeCapabilities: async (req: ValidateVolumeCapabilitiesRequest) => {
      const volumeId = required(req.volume_id, 'volume_id')
      if (req.volume_capabilities.length === 0)
        throw new CofferError('ERR_CSI_ARGUMENT_MISSING', 'volume_capabilities is required')
      if (!(await d.volumes.get(volumeId)))
        throw new CofferError('ERR_CSI_VOLUME_NOT_FOUND', `volume ${volumeId} does not exist`)
      const reasons = req.volume_capabilities.map(unsupportedReason).filter((r) => r !== undefined)
      if (reasons.length) return { message: reasons.join('; ') }
      return {
        confirmed: {
          volume_context: req.volume_context,
          volume_capabilities: req.volume_capabilities,
          parameters: req.parameters,
        },
      }
    },
  }
}

function capacityOf(range: CreateVolumeRequest['capacity_range']): number {
  const requiredBytes = range?.required_bytes ?? 0
  const limit = range?.limit_bytes ?? 0
  if (requiredBytes < 0 || limit < 0 || (limit > 0 && requiredBytes > limit))
    throw new CofferError('ERR_CSI_ARGUMENT_INVALID', 'capacity_range: required_bytes must be ≤ limit_bytes')
  // No quota is enforced (the ciphertext shares the node's disk): the capacity is recorded as asked.
  return requiredBytes || limit
}

/** The volume's key source from the StorageClass parameters (validated: they are user input). */
export function keyOf(parameters: StringMap, defaultKey: VolumeKey | undefined): VolumeKey {
  for (const k of Object.keys(parameters))
    if (!OUR_PARAMETERS.has(k) && !k.startsWith(K8S_PARAMETER_PREFIX))
      throw new CofferError(
        'ERR_CSI_ARGUMENT_INVALID',
        `unknown parameter ${k} (known: ${[...OUR_PARAMETERS].join(', ')})`,
      )
  const { keyUri, kbsUrl, attester } = parameters
  if (keyUri === undefined) {
    if (kbsUrl !== undefined || attester !== undefined)
      throw new CofferError('ERR_CSI_ARGUMENT_INVALID', 'kbsUrl and attester need keyUri')
    if (!defaultKey)
      throw new CofferError(
        'ERR_CSI_ARGUMENT_MISSING',
        'no key for the volume: set the keyUri parameter, or start the driver with --passphrase-file',
      )
    return defaultKey
  }
  if (!KBS_URI.test(keyUri))
    throw new CofferError('ERR_CSI_ARGUMENT_INVALID', 'keyUri must be kbs:///repo/type/tag')
  if (kbsUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(kbsUrl))
    throw new CofferError('ERR_CSI_ARGUMENT_INVALID', 'kbsUrl must be an http(s) URL')
  if (attester !== undefined && !/^[a-z][a-z0-9-]{0,31}$/.test(attester))
    throw new CofferError(
      'ERR_CSI_ARGUMENT_INVALID',
      'attester must be an attester name such as snp, tdx or tpm',
    )
  return {
    kind: 'kbs',
    uri: keyUri,
    ...(kbsUrl !== undefined ? { kbsUrl } : {}),
    ...(attester !== undefined ? { attester } : {}),
  }
}
