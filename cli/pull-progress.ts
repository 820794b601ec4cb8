import type { PullEvent } from '../lib/image/pull.js'
import { humanBytes, progressBars, shortDigest } from './progress.js'
import type { CommandContext } from './run.js'

/**
 * Renders a pull's events (`coffer pull`, and `coffer image-service pull` from the gRPC stream):
 * one bar per fetched layer on a TTY, a line per step otherwise, JSON lines with --json (the
 * sampled `layer-progress` left out), nothing with --quiet. Call `stop` before printing a result.
 */
export async function pullProgress(
  ctx: CommandContext,
  stream: NodeJS.WriteStream = process.stderr,
): Promise<{ onEvent: (e: PullEvent) => void; stop: () => void }> {
  if (ctx.json)
    return { onEvent: (e) => e.type !== 'layer-progress' && ctx.emit({ event: e }), stop: () => {} }
  if (ctx.quiet) return { onEvent: () => {}, stop: () => {} }
  if (!ctx.interactive)
    return {
      onEvent: (e) => {
        const line = pullLine(e)
        if (line !== undefined) ctx.say(line)
      },
      stop: () => {},
    }

  const bars = await progressBars(stream)
  const onEvent = (e: PullEvent): void => {
    switch (e.type) {
      case 'layer-start':
        bars.add(e.diffId, `Layer ${shortDigest(e.diffId)}`, e.size)
        break
      case 'layer-progress':
        bars.update(e.diffId, e.bytes)
        break
      case 'layer':
        if (e.state === 'unpacked') bars.update(e.diffId, e.size, 'unpacked')
        else bars.log(pullLine(e)!)
        break
      default:
        bars.log(pullLine(e)!)
    }
  }
  return { onEvent, stop: bars.stop }
}

/** The plain line for an event; progress has none (it would flood a log). */
function pullLine(e: PullEvent): string | undefined {
  switch (e.type) {
    case 'verified':
      return `✔ signature policy accepted ${e.manifestDigest} (${e.scope})`
    case 'layer-start':
      return `  layer ${shortDigest(e.diffId)} ${humanBytes(e.size)} fetching`
    case 'layer-progress':
      return undefined
    case 'layer':
      return `✔ layer ${shortDigest(e.diffId)} ${humanBytes(e.size)} ${e.state}`
  }
}
