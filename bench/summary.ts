/**
 * The one table at the top of `bench/RESULTS.md`: every measured operation on a line, coffer
 * against the real peer tool measured in the same run, with peak RSS and the issue's goal.
 *
 * The "coffer vs peer" column is always a speed factor, higher is better: the peer's time over
 * coffer's for jobs that are timed, coffer's rate over the peer's for rates (IOPS, MiB/s). One
 * direction for every row keeps a reader from having to remember which ratios are inverted.
 */
import type { FsBenchRow } from './fs.js'
import { FS_GOALS } from './fs.js'
import { KBS_GOALS, type KbsBenchResult } from './kbs-load.js'
import { PULL_GOALS, type PullBenchResult } from './pull.js'
import { median, type Row } from './report.js'

export interface SummaryRow {
  operation: string
  /** The tool coffer is compared with; undefined when none can run here. */
  peer?: string
  coffer: string
  peerResult?: string
  /** coffer's speed relative to the peer (> 1: coffer is faster). */
  speed?: number
  cofferRssMiB?: number
  peerRssMiB?: number
  goal: string
  pass: boolean
}

/** A timed copy, encryption or decryption against skopeo (`bench/run.ts`'s rows). */
export function copyRow(row: Row, totalBytes: number, peer: string): SummaryRow {
  const ct = median(row.coffer.map((m) => m.seconds))
  const st = median(row.skopeo.map((m) => m.seconds))
  const cr = maxRssMiB(row.coffer.map((m) => m.peakRssKiB))
  const sr = maxRssMiB(row.skopeo.map((m) => m.peakRssKiB))
  const rate = (s: number): string => `${s.toFixed(2)} s (${(totalBytes / 2 ** 20 / s).toFixed(0)} MiB/s)`
  return {
    operation: row.label,
    peer,
    coffer: rate(ct),
    peerResult: rate(st),
    speed: st / ct,
    cofferRssMiB: cr,
    peerRssMiB: sr,
    goal: `time ≤ ${row.goals.maxTimeRatio}× peer, RSS ≤ ${row.goals.maxRssMiB} MiB`,
    pass: ct / st <= row.goals.maxTimeRatio && cr <= row.goals.maxRssMiB,
  }
}

/** The guest's pull against `skopeo copy --decryption-key` followed by `umoci unpack`. */
export function pullRow(r: PullBenchResult): SummaryRow {
  const peers = r.skopeo.seconds + r.umoci.seconds
  const rss = r.coffer.peakRssKiB / 1024
  return {
    operation: `pull + decrypt + unpack (${r.image}, jwe, loopback registry)`,
    peer: 'skopeo copy --decryption-key + umoci unpack',
    coffer: `${r.coffer.seconds.toFixed(2)} s`,
    peerResult: `${r.skopeo.seconds.toFixed(2)} s + ${r.umoci.seconds.toFixed(2)} s`,
    speed: peers / r.coffer.seconds,
    cofferRssMiB: rss,
    peerRssMiB: maxRssMiB([r.skopeo.peakRssKiB, r.umoci.peakRssKiB]),
    goal: `time ≤ ${PULL_GOALS.maxTimeRatio}× peers, RSS ≤ ${PULL_GOALS.maxRssMiB} MiB`,
    pass: r.coffer.seconds / peers <= PULL_GOALS.maxTimeRatio && rss <= PULL_GOALS.maxRssMiB,
  }
}

/** KBS throughput: no peer can run here (see bench/kbs-load.ts), so the goal is absolute. */
export function kbsRows(r: KbsBenchResult): SummaryRow[] {
  const shape = (x: KbsBenchResult['gets']): string =>
    `${x.perSecond.toFixed(0)}/s, p50 ${x.p50Ms.toFixed(1)} ms, p99 ${x.p99Ms.toFixed(1)} ms`
  return [
    {
      operation: `KBS resource GET, most it serves (closed loop, concurrency ${r.concurrency})`,
      coffer: shape(r.gets),
      cofferRssMiB: r.serverPeakRssMiB,
      goal: `≥ ${KBS_GOALS.getsPerSecond}/s`,
      pass: r.gets.perSecond >= KBS_GOALS.getsPerSecond,
    },
    {
      operation: `KBS resource GET at a steady ${KBS_GOALS.getsPerSecond}/s (open loop)`,
      coffer: shape(r.getsAtGoalRate),
      cofferRssMiB: r.serverPeakRssMiB,
      goal: `p99 < ${KBS_GOALS.getP99Ms} ms`,
      pass: r.getsAtGoalRate.p99Ms < KBS_GOALS.getP99Ms,
    },
    {
      operation: `KBS attestation handshake, sample (concurrency ${r.concurrency})`,
      coffer: shape(r.handshakes),
      cofferRssMiB: r.serverPeakRssMiB,
      goal: `≥ ${KBS_GOALS.handshakesPerSecond}/s`,
      pass: r.handshakes.perSecond >= KBS_GOALS.handshakesPerSecond,
    },
  ]
}

/** The encrypted filesystem's fio jobs and tree extraction against a gocryptfs mount. */
export function fsRows(rows: FsBenchRow[]): SummaryRow[] {
  const c = rows.find((r) => r.target === 'coffer')
  const g = rows.find((r) => r.target === 'gocryptfs')
  if (!c || !g) return []
  const rss = { cofferRssMiB: c.serverPeakRssMiB, peerRssMiB: g.serverPeakRssMiB }
  const rate = (
    operation: string,
    pick: (r: FsBenchRow) => number,
    unit: string,
    min: number,
  ): SummaryRow => ({
    operation: `FUSE ${operation}`,
    peer: 'gocryptfs',
    coffer: `${pick(c).toFixed(0)} ${unit}`,
    peerResult: `${pick(g).toFixed(0)} ${unit}`,
    speed: pick(c) / pick(g),
    ...rss,
    goal: `≥ ${min}× peer`,
    pass: pick(c) / pick(g) >= min,
  })
  return [
    rate('fio sequential write, 1 MiB blocks', (r) => r.seqWriteMiBs, 'MiB/s', FS_GOALS.seqVsGocryptfs),
    rate('fio sequential read, 1 MiB blocks', (r) => r.seqReadMiBs, 'MiB/s', FS_GOALS.seqVsGocryptfs),
    rate('fio random write, 4 KiB', (r) => r.randWriteIops, 'IOPS', FS_GOALS.randVsGocryptfs),
    rate('fio random read, 4 KiB', (r) => r.randReadIops, 'IOPS', FS_GOALS.randVsGocryptfs),
    {
      operation: 'FUSE tar -x of a 20,000-file tree',
      peer: 'gocryptfs',
      coffer: `${c.treeSeconds.toFixed(1)} s`,
      peerResult: `${g.treeSeconds.toFixed(1)} s`,
      speed: g.treeSeconds / c.treeSeconds,
      ...rss,
      goal: 'none set (shown for scale)',
      pass: true,
    },
  ]
}

export function summaryTable(rows: SummaryRow[]): string {
  const mib = (v: number | undefined): string => (v === undefined ? '' : `${v.toFixed(0)} MiB`)
  const lines = [
    '| Operation | coffer | peer | peer result | coffer vs peer (speed) | coffer peak RSS | peer peak RSS | goal | met |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | :---: |',
  ]
  for (const r of rows)
    lines.push(
      `| ${r.operation} | ${r.coffer} | ${r.peer ?? 'none runs here'} | ${r.peerResult ?? ''} | ` +
        `${r.speed === undefined ? '' : `${r.speed.toFixed(2)}×`} | ${mib(r.cofferRssMiB)} | ${mib(r.peerRssMiB)} | ` +
        `${r.goal} | ${r.pass ? '✅' : '❌'} |`,
    )
  return lines.join('\n')
}

function maxRssMiB(kib: number[]): number {
  return Math.max(...kib) / 1024
}
