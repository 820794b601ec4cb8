import { availableParallelism } from 'node:os'
import { CofferError } from '../../util/errors.js'
import type { Volume } from '../volume.js'
import { lazyUnmount, mountFuse, type ReadCounts } from './binding.js'
import { fuseOperations, type FuseLog } from './operations.js'

/** `fusermount -uz` (binding.ts): for commands that detach a mount whose server is gone. */
export { lazyUnmount }

/**
 * The mount shows as source "coffer", type "fuse" in /proc/mounts. Options:
 * - `big_writes`: without it libfuse2 sends 4 KiB writes.
 * - `attr_timeout=0` (libfuse's default is 1 s): libfuse's path API gives each path of a
 *   hard-linked file its own kernel node, so a cached size or link count under one name would go
 *   stale when the file changes under another.
 * - `entry_timeout=1`: names may be remembered for a second; every change to them goes through
 *   this mount.
 */
export const FSNAME = 'coffer'
const MOUNT_OPTIONS = [`fsname=${FSNAME}`, 'big_writes', 'attr_timeout=0', 'entry_timeout=1']

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
  /** How reads were answered so far (binding.ts ReadCounts). */
  readCounts(): ReadCounts
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
  const log = o.log ?? ((line: string) => process.stderr.write(`coffer mount: ${line}\n`))
  // AES-GCM of big requests split over worker threads (block-crypto-workers.ts): one fewer than
  // the cores, as this thread takes a share too and the kernel and the client need a core as well.
  // On a loaded 2-core machine two workers were slower than one (every hand-over waits for a
  // time slice). The workers also take big whole-block writes (write-behind, open-file.ts).
  // COFFER_CRYPTO_THREADS overrides the count (0: all on this thread, no write-behind).
  vol.useCryptoThreads(Number(process.env.COFFER_CRYPTO_THREADS ?? availableParallelism() - 1))
  const { ops, handles } = fuseOperations(vol, log)
  const options = [...MOUNT_OPTIONS, ...(o.allowOther ? ['allow_other'] : []), ...(o.debug ? ['debug'] : [])]
  let session: Awaited<ReturnType<typeof mountFuse>>
  try {
    session = await mountFuse(mountpoint, ops, options, vol.contentKey())
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
    readCounts: () => session.readCounts(),
    unmount: () =>
      (done ??= (async () => {
        await session.unmount()
        await handles.closeAll()
      })()),
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
