/**
 * The CSI messages as proto-loader decodes them with `CSI_PROTO_OPTIONS` (proto.ts): snake_case
 * fields, enums as names, every scalar present with its default, unset messages as null. Only the
 * fields coffer reads are typed.
 */
export type StringMap = Record<string, string>

export interface VolumeCapabilityMsg {
  access_type?: 'block' | 'mount'
  block?: object | null
  mount?: { fs_type: string; mount_flags: string[]; volume_mount_group: string } | null
  access_mode?: { mode: string } | null
}

export interface CreateVolumeRequest {
  name: string
  capacity_range: { required_bytes: number; limit_bytes: number } | null
  volume_capabilities: VolumeCapabilityMsg[]
  parameters: StringMap
}

export interface DeleteVolumeRequest {
  volume_id: string
}

export interface ValidateVolumeCapabilitiesRequest {
  volume_id: string
  volume_context: StringMap
  volume_capabilities: VolumeCapabilityMsg[]
  parameters: StringMap
}

export interface NodeStageVolumeRequest {
  volume_id: string
  staging_target_path: string
  volume_capability: VolumeCapabilityMsg | null
  volume_context: StringMap
}

export interface NodeUnstageVolumeRequest {
  volume_id: string
  staging_target_path: string
}

export interface NodePublishVolumeRequest {
  volume_id: string
  staging_target_path: string
  target_path: string
  volume_capability: VolumeCapabilityMsg | null
  readonly: boolean
  volume_context: StringMap
}

export interface NodeUnpublishVolumeRequest {
  volume_id: string
  target_path: string
}

export interface NodeGetVolumeStatsRequest {
  volume_id: string
  volume_path: string
  staging_target_path: string
}
