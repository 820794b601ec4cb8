import { execFile } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { CofferError } from '../../util/errors.js'
import type { Volume } from '../volume.js'
import { loadFuse, type FuseHandle } from './binding.js'
import { fuseOperations, type FuseLog } from './operations.js'

/**
 * Mount options. `big_writes` rides in on fsname: fuse-native has no option for it, but joins every
 * option into one `-o` string (spec sheet §5.6), and without it libfuse2 sends 4 KiB writes.
 * `attr_timeout=0` rides the same way (fuse-native drops a 0 option as falsy, and libfuse's default
 * is 1 s): libfuse's path API gives each path of a hard-linked file its own kernel node, so a
 * cached size or link count under one name would go stale when the file changes under another.
 * The mount then shows as source "coffer", type "fuse" in /proc/mounts.
 */
export const FSNAME = 'coffer'
const FSNAME_WITH_OPTIONS = `${FSNAME},big_writes,attr_timeout=0`

export interface ServeOptions {
  /** Where EIO and other refused requests are reported. Default: stderr. */
  log?: FuseLog
  /** libfuse debug output (every request) on stderr. */
  debug?: boolean
  /** Let other users see the mount (needs user_allow_other for non-root). */
  allowOther?: boolean
}

/** A served mount. `unmount` is idempotent; the Volume stays open (the caller closes it). */
export interface ServedMount {
  readonly mountpoint: string
  unmount(): Promise<void>
}

/**
 * Serves `vol` at `mountpoint` from this process. The caller must never touch the mount itself
 * (synchronous fs calls on it deadlock the event loop that answers them, spec sheet §5.4): coffer
 * mount serves, and everything else uses the mount from other processes.
 *
 * A failed mount can leave a dead kernel mount behind (§5.5), so failure runs `fusermount -uz`.
 */
export async function serveVolume(
  vol: Volume,
  mountpoint: string,
  o: ServeOptions = {},
): Promise<ServedMount> {
  const Fuse = loadFuse()
  const log = o.log ?? ((line: string) => process.stderr.write(`coffer mount: ${line}\n`))
  // AES-GCM of big requests split over worker threads (block-crypto-workers.ts): one fewer than
  // the cores, as this thread takes a share too and the kernel and the client need a core as well.
  // On a loaded 2-core machine two workers were slower than one (every hand-over waits for a
  // time slice). The workers also take big whole-block writes (write-behind, open-file.ts).
  // COFFER_CRYPTO_THREADS overrides the count (0: all on this thread, no write-behind).
  vol.useCryptoThreads(Number(process.env.COFFER_CRYPTO_THREADS ?? availableParallelism() - 1))
  const { ops, handles } = fuseOperations(vol, log)
  const fuse: FuseHandle = new Fuse(mountpoint, ops, {
    fsname: FSNAME_WITH_OPTIONS,
    // No per-request timeout: a slow disk must not turn into ETIMEDOUT half-way through a write,
    // and read/write use libfuse's buffer until they answer (operations.ts), never after a timeout.
    timeout: false,
    debug: o.debug === true,
    allowOther: o.allowOther === true,
    // Names may be remembered for a second: every change to them goes through this mount.
    entryTimeout: 1,
  })
  try {
    await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())))
  } catch (cause) {
    await lazyUnmount(mountpoint)
    throw new CofferError(
      'ERR_STORAGE_MOUNT_FAILED',
      `cannot mount at ${mountpoint}: ${errorMessage(cause)}`,
      {
        cause,
      },
    )
  }
  let done: Promise<void> | undefined
  return {
    mountpoint,
    unmount: () =>
      (done ??= (async () => {
        await new Promise<void>((resolve, reject) =>
          fuse.unmount((err) => {
            // Already gone (fusermount -u from outside, or the kernel aborted it): fine at shutdown.
            if (err && !err.unmountFailure) reject(err)
            else resolve()
          }),
        )
        await handles.closeAll()
      })()),
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** `fusermount -uz`: detaches a mount even if it is busy or its server is gone. Never throws. */
export function lazyUnmount(mountpoint: string): Promise<boolean> {
  return new Promise((resolve) => execFile('fusermount', ['-uz', mountpoint], (err) => resolve(!err)))
}
