/**
 * The node service's hands: everything that mounts or unmounts. The driver never serves FUSE in
 * its own process (a request on the mount from the serving process deadlocks it, storage.md §5.4):
 * each encrypted mount is a `coffer mount` child process, and bind mounts are plain mount(8).
 *
 * Lifecycle, per volume: persistent volumes are mounted once at their staging path
 * (`mountVolume`, from NodeStageVolume) and bound into each target (`bind`, from
 * NodePublishVolume), so one FUSE server owns a backing directory however many pods use it;
 * ephemeral inline volumes are mounted straight at their target (`mountEphemeral`).
 */
import type { Io } from '../util/io.js'

/** Where a persistent volume's passphrase comes from (see docs/kubernetes.md). */
export type VolumeKey =
  { kind: 'passphrase-file'; path: string } | { kind: 'kbs'; uri: string; kbsUrl?: string; attester?: string }

export interface VolumeMounter {
  /** A fresh volume with a random in-memory key at `target`; its ciphertext goes to `backing`. */
  mountEphemeral(target: string, backing: string, o?: Io): Promise<void>
  /** The persistent volume in `backing`, unlocked with `key`, at `target`. */
  mountVolume(backing: string, target: string, key: VolumeKey, o?: Io): Promise<void>
  /** Unmounts a `mountEphemeral`/`mountVolume` mount: its server wipes its keys and exits. */
  unmountVolume(target: string, o?: Io): Promise<void>
  /** Makes `source` visible at `target` too (read-only if asked). */
  bind(source: string, target: string, readonly: boolean, o?: Io): Promise<void>
  /** Undoes `bind`. */
  unbind(target: string, o?: Io): Promise<void>
  /** Whether `target` is a mount point now (from /proc/self/mountinfo). */
  isMounted(target: string): Promise<boolean>
}

/** Creates persistent volumes: the gocryptfs.conf and root IV in an empty backing directory. */
export interface VolumeFormatter {
  format(backing: string, key: VolumeKey, o?: Io): Promise<void>
}
