import { hkdfSync } from 'node:crypto'

/**
 * HKDF-SHA256 sub-keys of the 32-byte master key, with gocryptfs's exact info strings
 * (internal/cryptocore/hkdf.go). The salt is empty. The master-key wrap in gocryptfs.conf reuses
 * the content info string on the scrypt output (internal/configfile/config_file.go).
 */
export const HKDF_INFO_CONTENT = 'AES-GCM file content encryption'
export const HKDF_INFO_NAMES = 'EME filename encryption'

export function hkdf32(ikm: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), info, 32))
}

/** The two keys a default gocryptfs v2 volume uses. */
export interface VolumeKeys {
  /** AES-256-GCM key for file contents, symlink targets (and xattr values). */
  readonly content: Buffer
  /** AES-256 key for EME name encryption. */
  readonly names: Buffer
}

export function deriveVolumeKeys(masterKey: Uint8Array): VolumeKeys {
  return { content: hkdf32(masterKey, HKDF_INFO_CONTENT), names: hkdf32(masterKey, HKDF_INFO_NAMES) }
}
