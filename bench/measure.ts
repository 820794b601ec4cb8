/**
 * Wall time and peak RSS of one command's process tree.
 *
 * Node cannot read a child's rusage, so the peak comes from `/proc`: every 50 ms we list the tree
 * (the root and, by scanning `/proc/<pid>/stat` for parent ids, its descendants) and sum each
 * member's `VmHWM`, its own high-water mark; the largest sum seen is the peak. VmHWM only grows,
 * so a poll that comes late still sees the peak; what can slip is growth in the last 50 ms before
 * exit. Where GNU time is installed (`/usr/bin/time`, Debian package `time`) the command also runs
 * under it, and its `%M` (ru_maxrss from wait4, exact for the largest single process) is a floor.
 */
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** One finished run. */
export interface Measurement {
  /** From spawn to exit, measured here. */
  seconds: number
  /** Peak RSS of the tree in KiB: max(polled VmHWM sum, GNU time's %M). */
  peakRssKiB: number
  /** The polled value alone. */
  polledRssKiB: number
  /** GNU time's %M, when it ran under /usr/bin/time. */
  timeRssKiB?: number
  /**
   * Bytes the tree read and wrote through syscalls (`/proc/<pid>/io` rchar/wchar: files and sockets
   * alike), as last polled: evidence that a copy moved the data rather than skipping or mounting it.
   * Anything done in the final poll interval is missing.
   */
  ioBytes: { read: number; written: number }
  exitCode: number | null
  stdout: string
  stderr: string
}

const POLL_MS = 50
const GNU_TIME = '/usr/bin/time'
/** Output kept per stream; enough for coffer's --json events and skopeo's lines. */
const OUTPUT_LIMIT = 1 << 20

/**
 * Runs `command args…` to completion and measures it. Throws only if the process cannot be
 * spawned; a non-zero exit is returned for the caller to judge. Aborting `signal` kills the
 * process tree (SIGTERM, then SIGKILL after 3 s) and rejects.
 */
export async function measure(
  command: string,
  args: string[],
  o: { signal?: AbortSignal; env?: NodeJS.ProcessEnv } = {},
): Promise<Measurement> {
  o.signal?.throwIfAborted()
  const useTime = existsSync(GNU_TIME)
  const scratch = useTime ? await mkdtemp(join(tmpdir(), 'coffer-bench-time-')) : undefined
  const timeOut = scratch ? join(scratch, 'time.txt') : undefined
  const [file, argv] = timeOut
    ? [GNU_TIME, ['-f', '%e %M', '-o', timeOut, command, ...args]]
    : [command, args]
  try {
    const started = performance.now()
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env })
    const rootPid = child.pid
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-OUTPUT_LIMIT)))
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-OUTPUT_LIMIT)))

    let polled = 0
    /** Latest rchar/wchar per pid; they only grow, and a pid that exited keeps its last value. */
    const io = new Map<number, { read: number; written: number }>()
    const poll = (): void => {
      if (rootPid === undefined) return
      // The GNU time wrapper itself (~2 MiB, no I/O of note) is not what we measure.
      const members = treeOf(rootPid).filter((pid) => !(useTime && pid === rootPid))
      polled = Math.max(
        polled,
        members.reduce((sum, pid) => sum + vmHwmKiB(pid), 0),
      )
      for (const pid of members) {
        const now = ioOf(pid)
        if (now) io.set(pid, now)
      }
    }
    const timer = setInterval(poll, POLL_MS)
    // GNU time dies of SIGTERM without passing it on, so the whole tree gets it, leaves first.
    const killTree = (signal: NodeJS.Signals): void => {
      if (rootPid === undefined) return
      for (const pid of treeOf(rootPid).reverse()) {
        try {
          process.kill(pid, signal)
        } catch {
          // already gone
        }
      }
    }
    const onAbort = (): void => {
      killTree('SIGTERM')
      setTimeout(() => killTree('SIGKILL'), 3000).unref()
    }
    o.signal?.addEventListener('abort', onAbort, { once: true })

    const exitCode = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject)
      child.once('exit', (code) => resolve(code))
    }).finally(() => {
      clearInterval(timer)
      o.signal?.removeEventListener('abort', onAbort)
    })
    const seconds = (performance.now() - started) / 1000
    // 'close' follows 'exit' once the pipes are drained.
    if (child.stdout.readable || child.stderr.readable)
      await new Promise<void>((resolve) => child.once('close', () => resolve()))
    o.signal?.throwIfAborted()

    const timeRssKiB = timeOut ? await readTimeRss(timeOut) : undefined
    return {
      seconds,
      peakRssKiB: Math.max(polled, timeRssKiB ?? 0),
      polledRssKiB: polled,
      ...(timeRssKiB !== undefined ? { timeRssKiB } : {}),
      ioBytes: [...io.values()].reduce(
        (sum, v) => ({ read: sum.read + v.read, written: sum.written + v.written }),
        { read: 0, written: 0 },
      ),
      exitCode,
      stdout,
      stderr,
    }
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true })
  }
}

/** `%e %M` as GNU time wrote it (the last line; a killed command adds a line before it). */
async function readTimeRss(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '')
  const last = text.trim().split('\n').at(-1) ?? ''
  const kib = Number(last.split(' ')[1])
  return Number.isFinite(kib) && kib > 0 ? kib : undefined
}

/** The summed peak resident set (`VmHWM`) of `root` and its live descendants, in KiB. */
export function treePeakRssKiB(root: number): number {
  return treeOf(root).reduce((sum, pid) => sum + vmHwmKiB(pid), 0)
}

/** `root` and its live descendants. */
function treeOf(root: number): number[] {
  const parentOf = new Map<number, number>()
  for (const name of readdirSync('/proc')) {
    const pid = Number(name)
    if (!Number.isInteger(pid)) continue
    const ppid = parentPid(pid)
    if (ppid !== undefined) parentOf.set(pid, ppid)
  }
  const tree = [root]
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parentOf) if (ppid === tree[i]) tree.push(pid)
  }
  return tree
}

function parentPid(pid: number): number | undefined {
  try {
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses, so split after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  } catch {
    return undefined // gone meanwhile
  }
}

/** The process's peak resident set (`VmHWM`), 0 if it is gone or a zombie. */
function vmHwmKiB(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : 0
  } catch {
    return 0
  }
}

/** `rchar`/`wchar` from `/proc/<pid>/io`, undefined if it is gone or not ours to read. */
function ioOf(pid: number): { read: number; written: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8')
    const read = /^rchar: (\d+)$/m.exec(text)?.[1]
    const written = /^wchar: (\d+)$/m.exec(text)?.[1]
    return read && written ? { read: Number(read), written: Number(written) } : undefined
  } catch {
    return undefined
  }
}
