/** lib/csi: the CSI driver (Identity, minimal Controller, Node) behind `coffer csi serve`. */
export { startCsiServer, socketPathOf } from './server.js'
export type { CsiServerOptions, RunningCsiServer } from './server.js'
export { DRIVER_NAME, TOPOLOGY_NODE_KEY, EPHEMERAL_CONTEXT_KEY } from './driver.js'
export type { DriverSettings } from './driver.js'
export type { VolumeMounter, VolumeFormatter, VolumeKey } from './volume-mounter.js'
export {
  createCliVolumeMounter,
  createCliVolumeFormatter,
  DEFAULT_COFFER_COMMAND,
} from './cli-volume-mounter.js'
export { csiServices, CSI_PROTO_PATH } from './proto.js'
