/**
 * The pull renderer in its four modes: JSON lines (without the sampled byte counts), nothing with
 * --quiet, plain lines without a TTY, bars on a TTY.
 */
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { pullProgress } from '../../../cli/pull-progress.js'
import type { CommandContext } from '../../../cli/run.js'
import type { PullEvent } from '../../../lib/image/pull.js'

const diffId = `sha256:${'ab'.repeat(32)}`
const reusedId = `sha256:${'cd'.repeat(32)}`
const MiB = 1 << 20
const events: PullEvent[] = [
  { type: 'verified', manifestDigest: `sha256:${'01'.repeat(32)}`, scope: 'docker.io/app' },
  { type: 'layer', diffId: reusedId, size: 3 * MiB, state: 'reused' },
  { type: 'layer-start', diffId, digest: `sha256:${'ef'.repeat(32)}`, size: 8 * MiB },
  { type: 'layer-progress', diffId, bytes: 2 * MiB, size: 8 * MiB },
  { type: 'layer-progress', diffId, bytes: 6 * MiB, size: 8 * MiB },
  { type: 'layer', diffId, size: 8 * MiB, state: 'unpacked' },
]

function context(mode: { json?: boolean; quiet?: boolean; interactive?: boolean }): {
  ctx: CommandContext
  said: string[]
  emitted: unknown[]
} {
  const said: string[] = []
  const emitted: unknown[] = []
  const json = mode.json === true
  const quiet = mode.quiet === true
  return {
    said,
    emitted,
    ctx: {
      json,
      quiet,
      interactive: mode.interactive === true,
      signal: new AbortController().signal,
      say: (l) => !json && !quiet && said.push(l),
      emit: (v) => json && emitted.push(v),
    },
  }
}

/** A stream cli-progress takes for a terminal, collecting what is drawn. */
function fakeTty(): { stream: NodeJS.WriteStream; text: () => string } {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough
  let out = ''
  stream.on('data', (d: Buffer) => (out += d.toString()))
  Object.assign(stream, {
    isTTY: true,
    columns: 160,
    rows: 40,
    cursorTo: (_x: number, _y?: number, cb?: () => void) => (cb?.(), true),
    moveCursor: (_dx: number, _dy: number, cb?: () => void) => (cb?.(), true),
    clearLine: (_dir: number, cb?: () => void) => (cb?.(), true),
    clearScreenDown: (cb?: () => void) => (cb?.(), true),
  })
  return { stream, text: () => out }
}

describe('pullProgress', () => {
  it('--json: one line per event, without layer-progress', async () => {
    const { ctx, emitted, said } = context({ json: true })
    const p = await pullProgress(ctx)
    events.forEach(p.onEvent)
    p.stop()
    expect(emitted.map((e) => (e as { event: PullEvent }).event.type)).toEqual([
      'verified',
      'layer',
      'layer-start',
      'layer',
    ])
    expect(said).toEqual([])
  })

  it('--quiet: nothing', async () => {
    const { ctx, emitted, said } = context({ quiet: true })
    const tty = fakeTty()
    const p = await pullProgress(ctx, tty.stream)
    events.forEach(p.onEvent)
    p.stop()
    expect([...emitted, ...said]).toEqual([])
    expect(tty.text()).toBe('')
  })

  it('no TTY: a line per step, none per byte count', async () => {
    const { ctx, said } = context({})
    const p = await pullProgress(ctx)
    events.forEach(p.onEvent)
    p.stop()
    expect(said).toEqual([
      `✔ signature policy accepted sha256:${'01'.repeat(32)} (docker.io/app)`,
      `✔ layer sha256:${'cd'.repeat(6)} 3.0 MiB reused`,
      `  layer sha256:${'ab'.repeat(6)} 8.0 MiB fetching`,
      `✔ layer sha256:${'ab'.repeat(6)} 8.0 MiB unpacked`,
    ])
  })

  it('TTY: a bar per fetched layer that fills up, other steps as lines above the bars', async () => {
    const { ctx, said } = context({ interactive: true })
    const tty = fakeTty()
    const p = await pullProgress(ctx, tty.stream)
    for (const e of events.slice(0, 5)) p.onEvent(e)
    p.stop()
    const midway = tty.text()
    expect(midway).toContain(`Layer sha256:${'ab'.repeat(6)} [`)
    expect(midway).toContain('| 6.0 MiB / 8.0 MiB')
    expect(midway).toContain('✔ signature policy accepted')
    expect(midway).toContain(`✔ layer sha256:${'cd'.repeat(6)} 3.0 MiB reused`)

    const done = fakeTty()
    const q = await pullProgress(ctx, done.stream)
    events.forEach(q.onEvent)
    q.stop()
    expect(done.text()).toMatch(/100% \| 8\.0 MiB \/ 8\.0 MiB unpacked/)
    expect(said).toEqual([]) // bars and log lines go to the terminal stream, not stdout
  })
})
