/**
 * `VolumeMounter` and `VolumeFormatter` on coffer's own CLI (the issue-8 contract):
 *   coffer mount --ephemeral TARGET --backing DIR
 *   coffer mount --volume BACKING TARGET (--passphrase-file F | --key kbs:///… [--kbs-url U --attester A])
 *   coffer umount TARGET
 * Each mount is a child process serving FUSE until `coffer umount` (SIGTERM to it). The child is
 * detached from our lifetime only as far as the kernel is concerned: if the driver dies, the
 * container dies and its mounts with it (storage.md §3.4: pods must then be restarted).
 */
import { spawn } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { createVolume } from '../storage/open-volume.js'
import { readPassphraseFile } from '../storage/passphrase-file.js'
import { awaitMounted, MountWaitError } from '../storage/mount/await-mounted.js'
import { CofferError, type CofferErrorCode } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { isMountPoint } from './mountinfo.js'
import { describe, runCommand } from './run-command.js'
import type { VolumeFormatter, VolumeKey, VolumeMounter } from './volume-mounter.js'

/** `coffer` as this process runs it: node + dist/cli/main.js next to dist/lib/csi/. */
export const DEFAULT_COFFER_COMMAND: readonly string[] = [
  process.execPath,
  fileURLToPath(new URL('../../cli/main.js', import.meta.url)),
]

/** Attestation plus a KBS round trip, then scrypt: generous. */
const MOUNT_TIMEOUT_MS = 120_000
/** `coffer umount` waits up to 30 s for the server itself. */
const UMOUNT_TIMEOUT_MS = 45_000
const MOUNT8_TIMEOUT_MS = 30_000
/** A KBS resource used as a passphrase: gocryptfs reads at most one line of a passfile anyway. */
const MAX_KBS_PASSPHRASE_BYTES = 4096

/**
 * `coffer kbs get-resource` exit codes (not found 3, denied 7, unavailable 8) as the statuses the
 * provisioner should see: a missing key is the StorageClass's problem, an unreachable KBS is
 * worth a retry.
 */
const KBS_EXIT_CODES: Readonly<Record<number, CofferErrorCode>> = {
  3: 'ERR_CSI_KEY_NOT_FOUND',
  6: 'ERR_CSI_KEY_DENIED',
  7: 'ERR_CSI_KEY_DENIED',
  8: 'ERR_CSI_KEY_UNAVAILABLE',
}

export interface CliToolsOptions {
  /** argv prefix that runs coffer (default: this node and dist/cli/main.js). */
  coffer?: readonly string[]
  /** Called with each line a mount server writes to stderr (it carries no secrets). */
  log?: (line: string) => void
}

export function createCliVolumeMounter(opts: CliToolsOptions = {}): VolumeMounter {
  const coffer = opts.coffer ?? DEFAULT_COFFER_COMMAND
  const log = opts.log ?? (() => {})
  return {
    mountEphemeral: (target, backing, o) =>
      serveMount([...coffer, 'mount', '--ephemeral', target, '--backing', backing, '--json'], target, log, o),
    mountVolume: (backing, target, key, o) =>
      serveMount(
        [...coffer, 'mount', '--volume', backing, target, ...keyFlags(key), '--json'],
        target,
        log,
        o,
      ),
    unmountVolume: async (target, o) => {
      await runCommand([...coffer, 'umount', target], { ...o, timeoutMs: UMOUNT_TIMEOUT_MS })
    },
    bind: async (source, target, readonly, o) => {
      await runCommand(['mount', '--bind', source, target], { ...o, timeoutMs: MOUNT8_TIMEOUT_MS })
      // A bind mount takes `ro` only on a remount (mount(8), "bind mount operation").
      if (readonly)
        await runCommand(['mount', '-o', 'remount,bind,ro', target], { ...o, timeoutMs: MOUNT8_TIMEOUT_MS })
    },
    unbind: async (target, o) => {
      await runCommand(['umount', target], { ...o, timeoutMs: MOUNT8_TIMEOUT_MS })
    },
    isMounted: (target) => isMountPoint(target),
  }
}

/**
 * Formats in this process with lib/storage (what `coffer fs init` runs; no FUSE is involved). A
 * KBS passphrase comes from a `coffer kbs get-resource` child, which attests: it travels through
 * the child's stdout pipe into this process's memory, never to disk or argv, and is wiped after.
 */
export function createCliVolumeFormatter(
  opts: CliToolsOptions & { scryptLogN?: number } = {},
): VolumeFormatter {
  const coffer = opts.coffer ?? DEFAULT_COFFER_COMMAND
  return {
    async format(backing, key, o) {
      const passphrase =
        key.kind === 'passphrase-file'
          ? await readPassphraseFile(key.path)
          : await kbsPassphrase(coffer, key, o)
      try {
        await mkdir(backing, { recursive: true })
        const vol = await createVolume(
          backing,
          passphrase,
          opts.scryptLogN ? { scryptLogN: opts.scryptLogN } : {},
        )
        vol.close()
      } finally {
        passphrase.fill(0)
      }
    },
  }
}

/** The first line of the KBS resource, as `coffer mount --key` uses it (gocryptfs -passfile rules). */
async function kbsPassphrase(
  coffer: readonly string[],
  key: Extract<VolumeKey, { kind: 'kbs' }>,
  o: Io = {},
): Promise<Buffer> {
  const { stdout } = await runCommand(
    [...coffer, 'kbs', 'get-resource', key.uri, ...kbsFlags(key, '--url')],
    {
      ...o,
      timeoutMs: MOUNT_TIMEOUT_MS,
      maxStdout: MAX_KBS_PASSPHRASE_BYTES,
      exitCodes: KBS_EXIT_CODES,
    },
  )
  const nl = stdout.indexOf(0x0a)
  const first = Buffer.from(nl === -1 ? stdout : stdout.subarray(0, nl))
  stdout.fill(0)
  if (first.length === 0) throw new CofferError('ERR_STORAGE_PASSPHRASE_EMPTY', `${key.uri} is empty`)
  return first
}

function keyFlags(key: VolumeKey): string[] {
  return key.kind === 'passphrase-file'
    ? [`--passphrase-file=${key.path}`]
    : [`--key=${key.uri}`, ...kbsFlags(key, '--kbs-url')]
}

/** Values go with `=`, so none of them can ever be read as another flag. */
function kbsFlags(key: Extract<VolumeKey, { kind: 'kbs' }>, urlFlag: string): string[] {
  return [
    ...(key.kbsUrl ? [`${urlFlag}=${key.kbsUrl}`] : []),
    ...(key.attester ? [`--attester=${key.attester}`] : []),
  ]
}

/**
 * Starts a `coffer mount … --json` server and resolves once it reports `{"mounted": …}` (the
 * filesystem answers from then on). If it exits first, its stderr is the error.
 */
function serveMount(argv: string[], target: string, log: (l: string) => void, o: Io = {}): Promise<void> {
  const [cmd, ...args] = argv
  const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-2000)
    for (const l of chunk.split('\n')) if (l.trim()) log(l)
  })
  return awaitMounted(child, { timeoutMs: MOUNT_TIMEOUT_MS, signal: o.signal }).catch((err: unknown) => {
    if (child.exitCode === null) child.kill('SIGTERM')
    const why = err instanceof MountWaitError ? err.message : String(err)
    const output =
      err instanceof MountWaitError && err.reason === 'exited' ? `: ${stderr.trim() || 'no output'}` : ''
    throw new CofferError('ERR_CSI_MOUNT_FAILED', `${describe(argv)} at ${target}: ${why}${output}`, {
      cause: err,
    })
  })
}
