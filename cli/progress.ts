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

/**
 * Renders copy events: bars on a TTY (cli-progress, loaded only then), skopeo-like lines
 * otherwise, JSON lines with --json, nothing with --quiet. Call `stop` before printing a result.
 */
export async function copyProgress(ctx: CommandContext): Promise<{ sink: CopyEventSink; stop: () => void }> {
  if (ctx.json)
    return {
      sink: (e) => e.type !== 'blob-progress' && ctx.emit({ event: e.type, ...omitType(e) }),
      stop: () => {},
    }
  if (ctx.quiet) return { sink: () => {}, stop: () => {} }
  if (!ctx.interactive) return { sink: plainLines, stop: () => {} }

  const { MultiBar, Presets } = await import('cli-progress')
  const multibar = new MultiBar(
    {
      stream: process.stderr,
      // Not {total}/{value}: those are cli-progress's own raw numbers; ours are human sizes.
      format: '{label} [{bar}] {percentage}% | {copied} / {size}',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      barsize: 30,
      fps: 10,
    },
    Presets.shades_classic,
  )
  const bars = new Map<string, ReturnType<typeof multibar.create>>()
  const sink: CopyEventSink = (e) => {
    switch (e.type) {
      case 'blob-start':
        bars.set(
          e.digest,
          multibar.create(e.size, 0, {
            label: `Copying blob ${shortDigest(e.digest)}`,
            copied: humanBytes(0),
            size: humanBytes(e.size),
          }),
        )
        break
      case 'blob-progress':
        bars.get(e.digest)?.update(Math.min(e.bytes, e.size), { copied: humanBytes(e.bytes) })
        break
      case 'blob-done':
        bars.get(e.digest)?.update(e.size, { copied: humanBytes(e.size) })
        break
      case 'blob-skipped':
        multibar.log(
          `Copying blob ${shortDigest(e.digest)} skipped: ${e.reason === 'exists' ? 'already exists' : 'mounted from the source repository'}\n`,
        )
        break
      case 'retry':
        multibar.log(`Retrying (${e.attempt}) after ${e.reason}: ${e.url}\n`)
        break
      default:
        break
    }
  }
  // One last frame before stopping: a copy faster than the frame rate would otherwise show no bars.
  let stopped = false
  return {
    sink,
    stop: () => {
      if (stopped) return
      stopped = true
      multibar.update()
      multibar.stop()
    },
  }
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
