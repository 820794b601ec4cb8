/** The benchmark's output: the machine it ran on, and the markdown table with the goals. */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { availableParallelism, loadavg, machine, release, totalmem, type } from 'node:os'
import type { BenchImage } from './image.js'
import type { Measurement } from './measure.js'

/** What a row checks coffer against. */
export interface Goals {
  /** coffer's median wall time at most this fraction of skopeo's. */
  maxTimeRatio: number
  /** coffer's peak RSS at most this many MiB. */
  maxRssMiB: number
}

/** Copies (issue 3): coffer ≤ 0.8× skopeo's time, ≤ 120 MiB. */
export const COPY_GOALS: Goals = { maxTimeRatio: 0.8, maxRssMiB: 120 }
/** Encryption and decryption (issue 4): coffer ≥ 5× faster than skopeo, ≤ 150 MiB. */
export const CRYPT_GOALS: Goals = { maxTimeRatio: 0.2, maxRssMiB: 150 }

/** One operation, measured for both tools. */
export interface Row {
  label: string
  goals: Goals
  coffer: Measurement[]
  skopeo: Measurement[]
}

/**
 * What the machine and the tools are, as `key: value` lines. Call it before the benchmark starts:
 * the load average then shows whether something else was running (numbers from a busy 2-core box
 * swing by a second or more).
 */
export function describeMachine(cwd: string): [string, string][] {
  const cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown'
  return [
    ['CPU', cpu],
    ['Cores', String(availableParallelism())],
    ['Memory', `${(totalmem() / 2 ** 30).toFixed(1)} GiB`],
    ['Kernel', `${type()} ${release()} ${machine()}`],
    ['Node', process.version],
    ['skopeo', firstLine('skopeo', ['--version'])],
    ['umoci', firstLine('umoci', ['--version'])],
    ['gocryptfs', firstLine('gocryptfs', ['-version'])],
    ['fio', firstLine('fio', ['--version'])],
    ['Registry', firstLine('docker-registry', ['--version'])],
    ['coffer', cofferRevision(cwd)],
    [
      'Load average at start (1, 5, 15 min)',
      loadavg()
        .map((l) => l.toFixed(2))
        .join(', '),
    ],
    ['Date', new Date().toISOString()],
  ]
}

/** The results table: one line per direction, medians of time, maxima of RSS. */
export function resultsTable(rows: Row[], image: BenchImage): string {
  const lines = [
    '| Operation | coffer time | skopeo time | time coffer/skopeo | coffer peak RSS | skopeo peak RSS | RSS coffer/skopeo | time goal | RSS goal |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: | :---: |',
  ]
  for (const row of rows) {
    const ct = median(row.coffer.map((m) => m.seconds))
    const st = median(row.skopeo.map((m) => m.seconds))
    const cr = Math.max(...row.coffer.map((m) => m.peakRssKiB)) / 1024
    const sr = Math.max(...row.skopeo.map((m) => m.peakRssKiB)) / 1024
    const throughput = (s: number): string => `${(image.totalBytes / 2 ** 20 / s).toFixed(0)} MiB/s`
    lines.push(
      `| ${row.label} | ${ct.toFixed(2)} s (${throughput(ct)}) | ${st.toFixed(2)} s (${throughput(st)}) | ` +
        `${(ct / st).toFixed(2)} | ${cr.toFixed(0)} MiB | ${sr.toFixed(0)} MiB | ${(cr / sr).toFixed(2)} | ` +
        `≤ ${row.goals.maxTimeRatio}× ${mark(ct / st <= row.goals.maxTimeRatio)} | ≤ ${row.goals.maxRssMiB} MiB ${mark(cr <= row.goals.maxRssMiB)} |`,
    )
  }
  return lines.join('\n')
}

/** Every run, in the order it ran, so outliers behind a median stay visible. */
export function runsTable(runs: { label: string; tool: string; m: Measurement }[]): string {
  const lines = [
    '| # | Copy | Tool | Wall time | Peak RSS (polled VmHWM) | Peak RSS (GNU time %M) | Bytes read / written |',
    '| ---: | --- | --- | ---: | ---: | ---: | ---: |',
  ]
  const mibs = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`
  runs.forEach(({ label, tool, m }, i) =>
    lines.push(
      `| ${i + 1} | ${label} | ${tool} | ${m.seconds.toFixed(2)} s | ${mibs(m.polledRssKiB * 1024)} | ` +
        `${m.timeRssKiB === undefined ? 'n/a' : mibs(m.timeRssKiB * 1024)} | ` +
        `${mibs(m.ioBytes.read)} / ${mibs(m.ioBytes.written)} |`,
    ),
  )
  return lines.join('\n')
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

function mark(ok: boolean): string {
  return ok ? '✅ pass' : '❌ fail'
}

function firstLine(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8' }).split('\n')[0]!.trim()
  } catch {
    return 'unknown'
  }
}

/** `git describe`-like: the commit, and whether the work tree had local changes. */
function cofferRevision(cwd: string): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib', 'cli'], {
      cwd,
      encoding: 'utf8',
    })
    return dirty.trim() ? `${head} with uncommitted changes in lib/ or cli/` : head
  } catch {
    return 'unknown'
  }
}
