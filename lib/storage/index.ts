/**
 * lib/storage: gocryptfs-v2-compatible encrypted storage without FUSE. The public surface:
 * create/open a volume, its plaintext operations, fsck, passphrase change, and the errno mapping
 * the FUSE layer needs.
 */
export {
  createVolume,
  openVolume,
  openVolumeWithKey,
  ephemeralVolume,
  changePassphrase,
  volumeInfo,
} from './open-volume.js'
export type { CreateVolumeOptions, VolumeInfo } from './open-volume.js'
export type { Volume, VolumeStat, VolumeStatfs, DirEntry, OpenOptions, SkippedEntry } from './volume.js'
export type { VolumeFile } from './open-file.js'
export { fsckVolume } from './fsck.js'
export type { FsckReport, FsckProblem } from './fsck.js'
export { errnoOf } from './posix-error.js'
export { readPassphraseFile } from './passphrase-file.js'
