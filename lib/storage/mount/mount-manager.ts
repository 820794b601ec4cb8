import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CofferError } from '../../util/errors.js'
import type { ReadCounts } from '../fuse/binding.js'
import { serveVolume, type ServedMount } from '../fuse/serve.js'
import { ephemeralVolume, openVolume } from '../open-volume.js'
import type { Volume } from '../volume.js'
import {
  cofferMountpoints,
  findMount,
  processStartTime,
  removeMountEntry,
  writeMountEntry,
  type MountEntry,
} from './state.js'

/** Where the key of a mount comes from. A passphrase is wiped by `mountVolume` once used. */
export type MountKey =
  | { kind: 'ephemeral'; backing?: string; onKey?: (masterKey: Buffer) => void }
  | { kind: 'volume'; backing: string; passphrase: Buffer }

export interface ActiveMount {
  readonly entry: MountEntry
  /** Resolves when the mount went away without `close` (fusermount -u from outside). */
  readonly gone: Promise<void>
  /** How the mount's reads were answered (native: on libfuse's threads; js: on the JS thread). */
  readCounts(): ReadCounts
  /** Unmounts, forgets the state entry, wipes the keys and, for ephemeral mounts, the backing. */
  close(): Promise<void>
}

/** How often the server checks that its mount still exists (someone may fusermount -u it). */
const WATCH_INTERVAL_MS = 1000

/**
 * Mounts a volume at `mountpoint`, served by this process, and records it in `stateDir`.
 * Keys: an ephemeral volume gets 32 random bytes that exist only in this process's memory (the
 * backing directory has no gocryptfs.conf); a persistent one is unlocked with its passphrase
 * before anything is mounted, so a wrong passphrase leaves nothing mounted.
 */
export async function mountVolume(
  mountpointArg: string,
  key: MountKey,
  stateDir: string,
): Promise<ActiveMount> {
  const mountpoint = await checkMountpoint(mountpointArg, stateDir)
  let vol: Volume
  let backing: string
  let removeBacking = false
  if (key.kind === 'ephemeral') {
    ;({ backing, removeBacking } = await ephemeralBacking(key.backing))
    const masterKey = randomBytes(32)
    try {
      vol = await ephemeralVolume(backing, masterKey, { create: true })
      key.onKey?.(masterKey)
    } catch (err) {
      if (removeBacking) await fs.rm(backing, { recursive: true, force: true })
      throw err
    } finally {
      masterKey.fill(0)
    }
  } else {
    backing = await fs.realpath(key.backing).catch((cause: unknown) => {
      throw new CofferError('ERR_NOT_FOUND', `${key.backing} does not exist`, { cause })
    })
    try {
      vol = await openVolume(backing, key.passphrase)
    } finally {
      key.passphrase.fill(0)
    }
  }
  let served: ServedMount
  try {
    served = await serveVolume(vol, mountpoint)
  } catch (err) {
    vol.close()
    if (removeBacking) await fs.rm(backing, { recursive: true, force: true })
    throw err
  }
  const entry: MountEntry = {
    pid: process.pid,
    pidStart: (await processStartTime(process.pid)) ?? '',
    mountpoint,
    backing,
    kind: key.kind,
    startedAt: new Date().toISOString(),
  }
  try {
    await writeMountEntry(stateDir, entry)
  } catch (err) {
    // Without a state entry nobody could find this mount again: do not leave it behind.
    await served.unmount().catch(() => undefined)
    vol.close()
    if (removeBacking) await fs.rm(backing, { recursive: true, force: true })
    throw err
  }

  let stop: (() => void) | undefined
  const gone = new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      cofferMountpoints().then(
        (m) => {
          if (!m.has(mountpoint)) resolve()
        },
        () => undefined,
      )
    }, WATCH_INTERVAL_MS)
    timer.unref()
    stop = () => clearInterval(timer)
  })
  let closing: Promise<void> | undefined
  return {
    entry,
    gone,
    readCounts: () => served.readCounts(),
    close: () =>
      (closing ??= (async () => {
        stop?.()
        try {
          await served.unmount()
        } finally {
          vol.close()
          await removeMountEntry(stateDir, mountpoint)
          // The data of an ephemeral volume is unreadable without the key that just went away;
          // removing it frees the space and leaves nothing to attack.
          if (key.kind === 'ephemeral') await fs.rm(backing, { recursive: true, force: true })
        }
      })()),
  }
}

async function checkMountpoint(mountpoint: string, stateDir: string): Promise<string> {
  let real: string
  try {
    real = await fs.realpath(mountpoint)
  } catch (cause) {
    throw new CofferError('ERR_NOT_FOUND', `mountpoint ${mountpoint} does not exist`, { cause })
  }
  if (!(await fs.stat(real)).isDirectory())
    throw new CofferError('ERR_INVALID_ARGUMENT', `mountpoint ${mountpoint} is not a directory`)
  const existing = await findMount(stateDir, real)
  if ((existing && !existing.stale) || (await cofferMountpoints()).has(real))
    throw new CofferError(
      'ERR_STORAGE_MOUNTPOINT_BUSY',
      `${real} is already a coffer mount${existing ? ` (pid ${existing.pid})` : ''}`,
    )
  if (existing) await removeMountEntry(stateDir, real) // stale: its server is gone
  return real
}

/** The backing directory of an ephemeral mount: a new private temp dir, or an empty given one. */
async function ephemeralBacking(
  given: string | undefined,
): Promise<{ backing: string; removeBacking: boolean }> {
  if (given === undefined) {
    const backing = await fs.mkdtemp(join(tmpdir(), 'coffer-ephemeral-'))
    return { backing, removeBacking: true }
  }
  await fs.mkdir(given, { recursive: true, mode: 0o700 })
  const backing = await fs.realpath(given)
  if ((await fs.readdir(backing)).length > 0)
    throw new CofferError('ERR_STORAGE_VOLUME_EXISTS', `--backing ${given} is not empty`)
  await fs.chmod(backing, 0o700)
  return { backing, removeBacking: true }
}
