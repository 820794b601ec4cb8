/** The driver's identity and settings, shared by the three CSI services. */
import type { VolumeKey } from './volume-mounter.js'

/** The name in CSIDriver, StorageClass `provisioner` and GetPluginInfo (csi-sanity: starts and ends with a letter). */
export const DRIVER_NAME = 'csi.coffer.dev'

/** Topology segment naming the node a volume lives on (its ciphertext is on that node's disk). */
export const TOPOLOGY_NODE_KEY = 'topology.csi.coffer.dev/node'

/** volume_context key kubelet sets on inline ephemeral volumes (KEP-596). */
export const EPHEMERAL_CONTEXT_KEY = 'csi.storage.k8s.io/ephemeral'

export interface DriverSettings {
  nodeId: string
  vendorVersion: string
  /** Volumes without a `keyUri` parameter use this node-wide passphrase file, if set. */
  defaultKey?: VolumeKey
}

export function nodeTopology(nodeId: string): { segments: Record<string, string> } {
  return { segments: { [TOPOLOGY_NODE_KEY]: nodeId } }
}
