import { writeSync } from 'node:fs'
import { resolve } from 'node:path'
import type { MountKey } from '../../lib/storage/mount/mount-manager.js'
import { readPassphraseFile } from '../../lib/storage/passphrase-file.js'
import { CofferError } from '../../lib/util/errors.js'
import { attestedKbsClient } from '../kbs-client-flags.js'
import type { CommandContext } from '../run.js'

/**
 * Test-only hook: with this variable set to an inherited file descriptor, `mount --ephemeral`
 * writes the random master key (hex) to that descriptor, so a test can prove the key is nowhere
 * else. It names a descriptor, never a path: the key does not touch disk this way either.
 */
export const TEST_KEY_FD_ENV = 'COFFER_TEST_EPHEMERAL_KEY_FD'

/** The passphrase of a persistent volume: a file (gocryptfs -passfile rules) or a KBS resource. */
async function volumePassphrase(opts: Record<string, unknown>, ctx: CommandContext): Promise<Buffer> {
  const file = opts.passphraseFile as string | undefined
  const uri = opts.key as string | undefined
  if ((file === undefined) === (uri === undefined))
    throw new CofferError('ERR_USAGE', '--volume needs exactly one of --passphrase-file and --key kbs:///…')
  if (file !== undefined) return readPassphraseFile(file)
  return kbsPassphrase(uri!, opts, ctx)
}

/**
 * The KBS resource is the volume's passphrase (not its raw master key), so a volume unlocked from
 * a KBS is an ordinary gocryptfs volume: `gocryptfs -passfile` opens it with the same bytes, and
 * the KBS can rotate it with `coffer fs passwd` without re-encrypting anything. Like a passphrase
 * file, the resource's first line is used.
 */
export async function kbsPassphrase(
  uri: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<Buffer> {
  const { parseResourceUri } = await import('../../lib/kbs/resource-uri.js')
  const resource = parseResourceUri(uri)
  const client = await attestedKbsClient(opts)
  const value = Buffer.from(
    await client.getResource(resource, { signal: ctx.signal }).finally(() => client.close()),
  )
  const nl = value.indexOf(0x0a)
  const first = Buffer.from(nl === -1 ? value : value.subarray(0, nl))
  value.fill(0)
  if (first.length === 0) throw new CofferError('ERR_STORAGE_PASSPHRASE_EMPTY', `${uri} is empty`)
  return first
}

/**
 * `coffer mount --ephemeral MOUNTPOINT [--backing DIR]` or
 * `coffer mount --volume BACKING MOUNTPOINT (--passphrase-file F | --key kbs:///…)`, and
 * `coffer mount --list`. Serves in the foreground until SIGINT/SIGTERM or `coffer umount`,
 * like `gocryptfs -f`: the shape systemd units, containers and the CSI plugin want.
 */
export async function mountCommand(
  mountpoint: string | undefined,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const { mountStateDir } = await import('../../lib/storage/mount/state.js')
  const stateDir = mountStateDir()
  if (opts.list === true) return listCommand(stateDir, ctx)
  if (mountpoint === undefined) throw new CofferError('ERR_USAGE', 'MOUNTPOINT is required')
  const ephemeral = opts.ephemeral === true
  const volume = opts.volume as string | undefined
  if (ephemeral === (volume !== undefined))
    throw new CofferError('ERR_USAGE', 'pass exactly one of --ephemeral and --volume BACKING')
  if (ephemeral && (opts.passphraseFile !== undefined || opts.key !== undefined))
    throw new CofferError('ERR_USAGE', '--ephemeral makes its own random key; drop --passphrase-file/--key')
  if (!ephemeral && opts.backing !== undefined)
    throw new CofferError(
      'ERR_USAGE',
      '--backing is for --ephemeral; with --volume the backing is its argument',
    )

  let key: MountKey
  if (ephemeral) {
    const fd = process.env[TEST_KEY_FD_ENV]
    key = {
      kind: 'ephemeral',
      ...(opts.backing !== undefined ? { backing: resolve(opts.backing as string) } : {}),
      ...(fd !== undefined ? { onKey: (k: Buffer) => writeSync(Number(fd), `${k.toString('hex')}\n`) } : {}),
    }
  } else {
    key = { kind: 'volume', backing: resolve(volume!), passphrase: await volumePassphrase(opts, ctx) }
  }
  const { mountVolume } = await import('../../lib/storage/mount/mount-manager.js')
  const mount = await mountVolume(resolve(mountpoint), key, stateDir)
  try {
    ctx.emit({
      mounted: mount.entry.mountpoint,
      backing: mount.entry.backing,
      kind: mount.entry.kind,
      pid: process.pid,
    })
    ctx.say(
      `Mounted ${mount.entry.kind === 'ephemeral' ? 'an ephemeral volume' : mount.entry.backing} at ${mount.entry.mountpoint} (pid ${process.pid}); serving until Ctrl-C, SIGTERM or coffer umount.`,
    )
    await Promise.race([
      mount.gone,
      new Promise<void>((res) => {
        if (ctx.signal.aborted) res()
        else ctx.signal.addEventListener('abort', () => res(), { once: true })
      }),
    ])
  } finally {
    await mount.close()
    // A request the kernel still sends to a lazily detached mount (a process kept a file open)
    // keeps libfuse's loop, and so the event loop, alive. Exit anyway once everything is cleaned
    // up; unref'd, so a normal exit is not delayed.
    setTimeout(() => process.exit(), EXIT_GRACE_MS).unref()
  }
  ctx.emit({ unmounted: mount.entry.mountpoint, reads: mount.readCounts() })
  ctx.say(`Unmounted ${mount.entry.mountpoint}.`)
}

async function listCommand(stateDir: string, ctx: CommandContext): Promise<void> {
  const { listMounts } = await import('../../lib/storage/mount/state.js')
  const mounts = await listMounts(stateDir)
  ctx.emit({ mounts })
  if (mounts.length === 0) ctx.say('No coffer mounts.')
  for (const m of mounts)
    ctx.say(
      `${m.mountpoint}\t${m.kind}\tpid ${m.pid}\t${m.stale ? 'STALE' : 'mounted'}\tbacking ${m.backing}`,
    )
}

/** How long a finished `coffer mount` may take to exit by itself before it exits explicitly. */
const EXIT_GRACE_MS = 1000

/** How long `coffer umount` waits for the serving process to unmount and exit. */
const UMOUNT_WAIT_MS = 30_000

/**
 * `coffer umount MOUNTPOINT`: asks the serving process to unmount (SIGTERM: it unmounts, wipes
 * its keys and, for an ephemeral volume, removes the backing), and waits for it to exit. A stale
 * entry (server gone) is cleaned up with `fusermount -uz`.
 */
export async function umountCommand(
  mountpoint: string,
  _opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const { mountStateDir, findMount, processStartTime, removeMountEntry, cofferMountpoints } =
    await import('../../lib/storage/mount/state.js')
  const { lazyUnmount } = await import('../../lib/storage/fuse/serve.js')
  const { realpath } = await import('node:fs/promises')
  const stateDir = mountStateDir()
  const target = await realpath(mountpoint).catch(() => resolve(mountpoint))
  const entry = await findMount(stateDir, target)
  if (entry && !entry.stale) {
    try {
      process.kill(entry.pid, 'SIGTERM')
    } catch (err) {
      // ESRCH: it exited between the check and now, which is what we wanted.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
    }
    const deadline = Date.now() + UMOUNT_WAIT_MS
    while ((await processStartTime(entry.pid)) === entry.pidStart) {
      if (Date.now() > deadline)
        throw new CofferError(
          'ERR_STORAGE_UNMOUNT_FAILED',
          `pid ${entry.pid} serving ${target} did not exit within ${UMOUNT_WAIT_MS / 1000}s`,
        )
      await new Promise((r) => setTimeout(r, 50))
    }
  } else if (entry || (await cofferMountpoints()).has(target)) {
    // Nobody serves it any more: detach what the kernel still holds, forget the entry.
    if ((await cofferMountpoints()).has(target) && !(await lazyUnmount(target)))
      throw new CofferError('ERR_STORAGE_UNMOUNT_FAILED', `fusermount -uz ${target} failed`)
    await removeMountEntry(stateDir, target)
  } else {
    throw new CofferError('ERR_STORAGE_NOT_MOUNTED', `${target} is not a coffer mount`)
  }
  ctx.emit({ unmounted: target })
  ctx.say(`Unmounted ${target}.`)
}
