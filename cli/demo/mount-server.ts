/**
 * `coffer mount --ephemeral` as the demo runs it: a child process serves the FUSE mount, so the
 * demo itself may read and write the mount (a process must never touch a FUSE mount it serves: the
 * kernel would wait on the very thread that has to answer). The child writes `{"mounted": …}` once
 * the filesystem answers; SIGTERM makes it unmount, drop the key and remove the backing directory.
 */
import { spawn } from 'node:child_process'
import { realpath } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { awaitMounted, MountWaitError } from '../../lib/storage/mount/await-mounted.js'
import { cofferMountpoints } from '../../lib/storage/mount/state.js'
import { lazyUnmount } from '../../lib/storage/fuse/serve.js'
import { CofferError } from '../../lib/util/errors.js'
import type { Io } from '../../lib/util/io.js'

/** This coffer's entry point: dist/cli/main.js, beside dist/cli/demo/. */
const COFFER_MAIN = fileURLToPath(new URL('../main.js', import.meta.url))
/** Creating the volume and mounting it takes well under a second; allow for a loaded machine. */
const MOUNT_TIMEOUT_MS = 30_000
/** `coffer mount` unmounts and exits promptly on SIGTERM; past this it is killed and detached. */
const STOP_TIMEOUT_MS = 10_000
const STDERR_TAIL_CHARS = 2000

export interface MountServer {
  readonly pid: number
  readonly mountpoint: string
  /** Unmounts (SIGTERM to the server) and waits for it to exit; idempotent. */
  stop(): Promise<void>
}

/**
 * Starts `coffer mount --ephemeral MOUNTPOINT --backing BACKING --json`, its mount state in
 * `stateDir`, and resolves once the mount answers. A failure to come up stops the child first.
 */
export async function startEphemeralMount(
  mountpointArg: string,
  backing: string,
  stateDir: string,
  o: Io = {},
): Promise<MountServer> {
  // As the kernel lists it in mountinfo, so the checks below recognise it.
  const mountpoint = await realpath(mountpointArg)
  const child = spawn(
    process.execPath,
    [COFFER_MAIN, 'mount', '--ephemeral', mountpoint, '--backing', backing, '--json'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COFFER_MOUNT_STATE_DIR: stateDir } },
  )
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr = (stderr + c).slice(-STDERR_TAIL_CHARS)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const killed = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((r) => setTimeout(() => r(true), STOP_TIMEOUT_MS).unref()),
        ])
        if (killed) {
          child.kill('SIGKILL')
          await exited
        }
      }
      // A server killed before it could unmount leaves the kernel mount behind: detach it.
      if ((await cofferMountpoints()).has(mountpoint) && !(await lazyUnmount(mountpoint)))
        throw new CofferError('ERR_STORAGE_UNMOUNT_FAILED', `fusermount -uz ${mountpoint} failed`)
    })())

  try {
    await awaitMounted(child, { timeoutMs: MOUNT_TIMEOUT_MS, signal: o.signal }).catch((err: unknown) => {
      if (err instanceof MountWaitError && err.reason === 'canceled')
        throw new CofferError('ERR_CANCELED', 'canceled while mounting')
      const why = err instanceof MountWaitError ? err.message : String(err)
      throw new CofferError(
        'ERR_STORAGE_MOUNT_FAILED',
        `coffer mount ${why}: ${stderr.trim() || 'no output'}`,
        {
          cause: err,
        },
      )
    })
  } catch (err) {
    await stop().catch(() => undefined)
    throw err
  }
  return { pid: child.pid!, mountpoint, stop }
}
