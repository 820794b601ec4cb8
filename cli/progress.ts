import type { CopyEvent, CopyEventSink } from '../lib/oci/copy-events.js'
import type { CommandContext } from './run.js'

/** Short digest for humans: `sha256:0123456789ab`. */
export function shortDigest(digest: string): string {
  const i = digest.indexOf(':')
  return `${digest.slice(0, i)}:${digest.slice(i + 1, i + 13)}`
}

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`
}

/** Bars on stderr, one per item of known size (a blob, a layer), drawn at most 10 times a second. */
export interface ProgressBars {
  add(id: string, label: string, total: number): void
  /** `value` of the item's total is done; `note` replaces the text after the sizes. */
  update(id: string, value: number, note?: string): void
  /** A line above the bars. */
  log(line: string): void
  /** Draws a last frame and releases the terminal; call before printing a result. Idempotent. */
  stop(): void
}

/** cli-progress is loaded only here, so commands without a TTY never pay for it. */
export async function progressBars(stream: NodeJS.WriteStream = process.stderr): Promise<ProgressBars> {
  const { MultiBar, Presets } = await import('cli-progress')
  const multibar = new MultiBar(
    {
      stream,
      // Not {total}/{value}: those are cli-progress's own raw numbers; ours are human sizes.
      format: '{label} [{bar}] {percentage}% | {done} / {size}{note}',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      barsize: 30,
      fps: 10,
    },
    Presets.shades_classic,
  )
  const bars = new Map<string, { bar: ReturnType<typeof multibar.create>; total: number }>()
  let stopped = false
  return {
    add: (id, label, total) => {
      const size = humanBytes(total)
      bars.set(id, { bar: multibar.create(total, 0, { label, done: humanBytes(0), size, note: '' }), total })
    },
    update: (id, value, note) => {
      const b = bars.get(id)
      if (!b) return
      const v = Math.min(value, b.total)
      b.bar.update(v, { done: humanBytes(v), ...(note !== undefined ? { note: ` ${note}` } : {}) })
    },
    log: (line) => multibar.log(`${line}\n`),
    // One last frame before stopping: a job faster than the frame rate would otherwise show no bars.
    stop: () => {
      if (stopped) return
      stopped = true
      multibar.update()
      multibar.stop()
    },
  }
}

/**
 * Renders copy events: bars on a TTY, skopeo-like lines otherwise, JSON lines with --json,
 * nothing with --quiet. Call `stop` before printing a result.
 */
export async function copyProgress(ctx: CommandContext): Promise<{ sink: CopyEventSink; stop: () => void }> {
  if (ctx.json)
    return {
      sink: (e) => e.type !== 'blob-progress' && ctx.emit({ event: e.type, ...omitType(e) }),
      stop: () => {},
    }
  if (ctx.quiet) return { sink: () => {}, stop: () => {} }
  if (!ctx.interactive) return { sink: plainLines, stop: () => {} }

  const bars = await progressBars()
  const sink: CopyEventSink = (e) => {
    switch (e.type) {
      case 'blob-start':
        bars.add(e.digest, `Copying blob ${shortDigest(e.digest)}`, e.size)
        break
      case 'blob-progress':
        bars.update(e.digest, e.bytes)
        break
      case 'blob-done':
        bars.update(e.digest, e.size)
        break
      case 'blob-skipped':
        bars.log(
          `Copying blob ${shortDigest(e.digest)} skipped: ${e.reason === 'exists' ? 'already exists' : 'mounted from the source repository'}`,
        )
        break
      case 'retry':
        bars.log(`Retrying (${e.attempt}) after ${e.reason}: ${e.url}`)
        break
      default:
        break
    }
  }
  return { sink, stop: bars.stop }
}

function plainLines(e: CopyEvent): void {
  const line = (s: string): boolean => process.stderr.write(`${s}\n`)
  switch (e.type) {
    case 'blob-start':
      line(`Copying blob ${shortDigest(e.digest)} (${humanBytes(e.size)})`)
      break
    case 'blob-done':
      line(`Copying blob ${shortDigest(e.digest)} done`)
      break
    case 'blob-skipped':
      line(
        `Copying blob ${shortDigest(e.digest)} skipped: ${e.reason === 'exists' ? 'already exists' : 'mounted'}`,
      )
      break
    case 'retry':
      line(`Retrying (${e.attempt}) after ${e.reason}`)
      break
    case 'manifest-written':
      if (e.top) line('Writing manifest to image destination')
      break
    default:
      break
  }
}

function omitType<T extends { type: string }>(e: T): Omit<T, 'type'> {
  const { type: _type, ...rest } = e
  return rest
}
