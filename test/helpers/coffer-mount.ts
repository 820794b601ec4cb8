/**
 * Runs `coffer mount` as its own process (the built binary, dist/), as the FUSE rules demand: the
 * test process only ever touches the mount with async fs calls while another process serves it.
 * `stop()` must run in finally/afterAll; it unmounts cleanly with SIGTERM and, if the server is
 * stuck, aborts the FUSE connection, detaches the mount and kills only the process it started.
 * For the CSI tests to come as well.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { COFFER_BIN } from './coffer.js'

export interface CofferMount {
  readonly mountpoint: string
  readonly backing: string
  readonly pid: number
  readonly child: ChildProcess
  /** With `exposeKey`: the ephemeral master key (hex), from the test-only descriptor hook. */
  readonly key?: string
  /** Everything the server wrote to stderr so far (EIO log lines land here). */
  stderr(): string
  /** The JSON documents the server printed so far (`mounted`, then `unmounted` with read counts). */
  events(): Record<string, unknown>[]
  /** Clean unmount (SIGTERM); falls back to abort + lazy unmount + SIGKILL. Idempotent. */
  stop(): Promise<void>
  /** Resolves with the exit code once the server exited. */
  readonly exited: Promise<number | null>
}

const START_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 20_000

export async function startCofferMount(
  args: string[],
  o: { env?: NodeJS.ProcessEnv; exposeKey?: boolean } = {},
): Promise<CofferMount> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.env }
  if (o.exposeKey) env.COFFER_TEST_EPHEMERAL_KEY_FD = '3'
  const child = spawn(process.execPath, [COFFER_BIN, 'mount', '--json', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe', o.exposeKey ? 'pipe' : 'ignore'],
  })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  let key = ''
  const keyDone = o.exposeKey
    ? new Promise<void>((resolve) => {
        const s = child.stdio[3] as Readable
        s.on('data', (d: Buffer) => (key += d.toString()))
        s.on('end', () => resolve())
        s.on('error', () => resolve())
      })
    : Promise.resolve()
  const lines = createInterface({ input: child.stdout! })
  const events: Record<string, unknown>[] = []
  lines.on('line', (line) => {
    try {
      events.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      /* not JSON: ignore */
    }
  })
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`coffer mount not ready in time: ${stderr}`)),
      START_TIMEOUT_MS,
    )
    lines.on('line', (line) => {
      try {
        const doc = JSON.parse(line) as Record<string, unknown>
        if (typeof doc.mounted === 'string') {
          clearTimeout(timer)
          resolve(doc)
        }
      } catch {
        /* not JSON: ignore */
      }
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`coffer mount exited ${code} before mounting: ${stderr}`))
    })
  }).catch(async (err: unknown) => {
    if (child.exitCode === null) child.kill('SIGKILL')
    throw err
  })
  if (o.exposeKey) await Promise.race([keyDone, new Promise((r) => setTimeout(r, 200))])
  const mountpoint = ready.mounted as string
  let stopping: Promise<void> | undefined
  return {
    mountpoint,
    backing: ready.backing as string,
    pid: child.pid!,
    child,
    ...(o.exposeKey ? { key: key.trim() } : {}),
    stderr: () => stderr,
    events: () => [...events],
    exited,
    stop: () =>
      (stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
        const code = await Promise.race([
          exited,
          new Promise((r) => setTimeout(() => r('timeout'), STOP_TIMEOUT_MS)),
        ])
        if (code === 'timeout') {
          await forceUnmount(mountpoint)
          if (child.exitCode === null) child.kill('SIGKILL')
          await exited
        } else if (await isMounted(mountpoint)) {
          await forceUnmount(mountpoint)
        }
      })()),
  }
}

/** Whether anything is mounted at `mountpoint` (from /proc/self/mountinfo). */
export async function isMounted(mountpoint: string): Promise<boolean> {
  return (await mountinfoLine(mountpoint)) !== undefined
}

async function mountinfoLine(mountpoint: string): Promise<string[] | undefined> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  return info
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[4] === mountpoint)
}

function run(cmd: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => execFile(cmd, args, (err) => resolve(!err)))
}

/**
 * Frees a mount whose server is stuck or gone: abort its FUSE connection (pending requests fail
 * with ENOTCONN), then detach it (spec sheet §5.5).
 */
export async function forceUnmount(mountpoint: string): Promise<void> {
  const fields = await mountinfoLine(mountpoint)
  if (!fields) return
  const minor = fields[2]?.split(':')[1]
  if (minor) {
    if (!(await readFile('/proc/self/mountinfo', 'utf8')).includes(' /sys/fs/fuse/connections '))
      await run('mount', ['-t', 'fusectl', 'none', '/sys/fs/fuse/connections'])
    await writeFile(`/sys/fs/fuse/connections/${minor}/abort`, '1').catch(() => undefined)
  }
  await run('fusermount', ['-uz', mountpoint])
}
