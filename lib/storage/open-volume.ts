import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs/promises'
import { join } from 'node:path'
import { CofferError } from '../util/errors.js'
import {
  DEFAULT_FEATURE_FLAGS,
  DEFAULT_SCRYPT_LOG_N,
  MASTER_KEY_LEN,
  readConfig,
  serializeConfig,
  unwrapMasterKey,
  wrapMasterKey,
  writeConfig,
  type VolumeConfig,
} from './config-file.js'
import { deriveVolumeKeys } from './key-derivation.js'
import { DIRIV_LEN, DIRIV_NAME } from './names.js'
import { GocryptfsVolume, type Volume } from './volume.js'

/** The Creator field coffer writes (informational; gocryptfs writes "gocryptfs 2.3"). */
export const CREATOR = 'coffer'

export interface CreateVolumeOptions {
  /** log2 of scrypt's N; gocryptfs's default is 16 (-scryptn). */
  scryptLogN?: number
}

/**
 * Initialises an empty directory as a gocryptfs v2 volume, exactly as `gocryptfs -init` does by
 * default: a random master key wrapped in `gocryptfs.conf`, and the root `gocryptfs.diriv`.
 * The master key exists only in memory and, wrapped, in the conf.
 */
export async function createVolume(
  backingDir: string,
  passphrase: Uint8Array,
  o: CreateVolumeOptions = {},
): Promise<Volume> {
  const entries = await fs.readdir(backingDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT')
      throw new CofferError('ERR_NOT_FOUND', `${backingDir} does not exist`, { cause: err })
    throw err
  })
  if (entries.length > 0)
    throw new CofferError(
      'ERR_STORAGE_VOLUME_EXISTS',
      entries.includes('gocryptfs.conf')
        ? `${backingDir} is already a volume`
        : `${backingDir} is not empty (a volume is created in an empty directory)`,
    )
  const masterKey = randomBytes(MASTER_KEY_LEN)
  try {
    const wrapped = await wrapMasterKey(masterKey, passphrase, o.scryptLogN ?? DEFAULT_SCRYPT_LOG_N)
    await fs.writeFile(join(backingDir, DIRIV_NAME), randomBytes(DIRIV_LEN), { flag: 'wx', mode: 0o444 })
    await writeConfig(
      backingDir,
      serializeConfig({ creator: CREATOR, ...wrapped, featureFlags: DEFAULT_FEATURE_FLAGS }),
    )
    return new GocryptfsVolume(backingDir, deriveVolumeKeys(masterKey), { dirIV: true, longNameMax: 255 })
  } finally {
    masterKey.fill(0)
  }
}

/**
 * An ephemeral volume: no gocryptfs.conf at all, the master key lives only in the caller's memory
 * (coffer mount --ephemeral). With `create`, the empty `backingDir` gets its root diriv; without,
 * an existing ephemeral backing directory is opened with the same key. The key is copied: the
 * caller may wipe its buffer.
 */
export async function ephemeralVolume(
  backingDir: string,
  masterKey: Uint8Array,
  o: { create: boolean },
): Promise<Volume> {
  if (masterKey.length !== MASTER_KEY_LEN)
    throw new CofferError('ERR_INVALID_ARGUMENT', 'a master key is 32 bytes')
  if (o.create) {
    const entries = await fs.readdir(backingDir)
    if (entries.length > 0) throw new CofferError('ERR_STORAGE_VOLUME_EXISTS', `${backingDir} is not empty`)
    await fs.writeFile(join(backingDir, DIRIV_NAME), randomBytes(DIRIV_LEN), { flag: 'wx', mode: 0o444 })
  }
  return new GocryptfsVolume(backingDir, deriveVolumeKeys(masterKey), { dirIV: true, longNameMax: 255 })
}

/** Opens a volume with its passphrase (ERR_STORAGE_WRONG_PASSPHRASE if it does not fit). */
export async function openVolume(backingDir: string, passphrase: Uint8Array): Promise<Volume> {
  const conf = await readConfig(backingDir)
  const masterKey = await unwrapMasterKey(conf, passphrase)
  try {
    return volumeFor(backingDir, conf, masterKey)
  } finally {
    masterKey.fill(0)
  }
}

/** Opens a volume with its raw master key (ephemeral volumes, key from a KBS). */
export async function openVolumeWithKey(backingDir: string, masterKey: Uint8Array): Promise<Volume> {
  if (masterKey.length !== MASTER_KEY_LEN)
    throw new CofferError('ERR_INVALID_ARGUMENT', 'a master key is 32 bytes')
  return volumeFor(backingDir, await readConfig(backingDir), masterKey)
}

function volumeFor(backingDir: string, conf: VolumeConfig, masterKey: Uint8Array): Volume {
  return new GocryptfsVolume(backingDir, deriveVolumeKeys(masterKey), {
    dirIV: conf.dirIV,
    longNameMax: conf.longNameMax,
  })
}

/**
 * Re-wraps the master key under a new passphrase (gocryptfs -passwd): fresh salt and nonce, the
 * same scrypt cost unless told otherwise; flags and contents are unchanged.
 */
export async function changePassphrase(
  backingDir: string,
  oldPassphrase: Uint8Array,
  newPassphrase: Uint8Array,
  o: CreateVolumeOptions = {},
): Promise<void> {
  const conf = await readConfig(backingDir)
  const masterKey = await unwrapMasterKey(conf, oldPassphrase)
  try {
    const logN = o.scryptLogN ?? Math.log2(conf.scrypt.N)
    const wrapped = await wrapMasterKey(masterKey, newPassphrase, logN)
    await writeConfig(
      backingDir,
      serializeConfig({
        creator: conf.creator,
        ...wrapped,
        featureFlags: conf.featureFlags,
        longNameMax: conf.longNameMax,
      }),
    )
  } finally {
    masterKey.fill(0)
  }
}

/** What `gocryptfs -info` shows, read without the passphrase. */
export interface VolumeInfo {
  creator: string
  version: number
  featureFlags: string[]
  scrypt: { N: number; R: number; P: number; KeyLen: number; saltBytes: number }
  longNameMax: number
}

export async function volumeInfo(backingDir: string): Promise<VolumeInfo> {
  const c = await readConfig(backingDir)
  return {
    creator: c.creator,
    version: c.version,
    featureFlags: [...c.featureFlags],
    scrypt: {
      N: c.scrypt.N,
      R: c.scrypt.R,
      P: c.scrypt.P,
      KeyLen: c.scrypt.KeyLen,
      saltBytes: Buffer.from(c.scrypt.Salt, 'base64').length,
    },
    longNameMax: c.longNameMax,
  }
}
