/**
 * The demo's narration: each step is timed and reported as it ends, as a human line
 * (`✔ title: detail (ms)`, indented detail lines below) or, with --json, as one object
 * `{"step": id, "title", "ok", "ms", "detail"?, "error"?}`. Every step checks the interrupt
 * signal first, so Ctrl-C stops the demo at the next step boundary at the latest. `summary()`
 * prints the table of steps and the total at the end, also after a failure.
 */
import { CofferError } from '../../lib/util/errors.js'
import { throwIfAborted } from '../../lib/util/io.js'
import type { CommandContext } from '../run.js'

/**
 * Test-only hook: after the step with this id, the demo waits (`{"held": id}`) until it is
 * interrupted (SIGINT/SIGTERM) or told to go on (SIGUSR2), so a test can interrupt it, or break
 * something under it, at a known point with every process of that point up.
 */
export const TEST_HOLD_AFTER_ENV = 'COFFER_TEST_DEMO_HOLD_AFTER'

export interface StepRecord {
  step: string
  title: string
  ok: boolean
  ms: number
  detail?: string[]
  error?: { code: string; message: string }
}

/** What a step's detail function returns: a line after the title, then indented lines. */
export type StepDetail = string | string[]

export class StepRunner {
  readonly records: StepRecord[] = []
  private readonly started = performance.now()

  constructor(
    private readonly ctx: CommandContext,
    private readonly holdAfter: string | undefined = process.env[TEST_HOLD_AFTER_ENV],
  ) {}

  /**
   * Runs one step; its failure is recorded and rethrown. An interrupted demo runs no further step,
   * except those marked `always` (the cleanup).
   */
  async run<T>(
    id: string,
    title: string,
    work: () => Promise<T>,
    detail?: (value: T) => StepDetail,
    o: { always?: boolean } = {},
  ): Promise<T> {
    if (!o.always) throwIfAborted(this.ctx.signal)
    const t0 = performance.now()
    let value: T
    try {
      value = await work()
    } catch (err) {
      const ms = Math.round(performance.now() - t0)
      const error =
        err instanceof CofferError
          ? { code: err.code, message: err.message }
          : { code: 'ERR_INTERNAL', message: String(err) }
      this.records.push({ step: id, title, ok: false, ms, error })
      this.ctx.emit({ step: id, title, ok: false, ms, error })
      this.ctx.say(`✘ ${title} (${ms} ms)`)
      throw err
    }
    const ms = Math.round(performance.now() - t0)
    const d = detail ? [detail(value)].flat() : []
    const record: StepRecord = { step: id, title, ok: true, ms, ...(d.length ? { detail: d } : {}) }
    this.records.push(record)
    this.ctx.emit(record)
    this.ctx.say(`✔ ${title}${d[0] ? `: ${d[0]}` : ''} (${ms} ms)`)
    for (const line of d.slice(1)) this.ctx.say(`    ${line}`)
    if (id === this.holdAfter) await this.hold(id)
    return value
  }

  /** The table of steps, the total time and the outcome (a hold or a signal can end a demo whose steps all passed). */
  summary(outcome: 'ok' | 'failed' | 'interrupted'): void {
    const totalMs = Math.round(performance.now() - this.started)
    this.ctx.emit({
      summary: {
        outcome,
        totalMs,
        steps: this.records.map(({ step, ok, ms }) => ({ step, ok, ms })),
      },
    })
    const width = Math.max(0, ...this.records.map((r) => r.step.length))
    const verdict = { ok: 'every step passed', failed: 'a step failed', interrupted: 'interrupted' }[outcome]
    this.ctx.say(`\nSummary: ${verdict}, ${(totalMs / 1000).toFixed(1)} s in all`)
    for (const r of this.records)
      this.ctx.say(`  ${r.ok ? '✔' : '✘'} ${r.step.padEnd(width)} ${String(r.ms).padStart(6)} ms`)
  }

  private async hold(id: string): Promise<void> {
    this.ctx.emit({ held: id })
    const signal = this.ctx.signal
    await new Promise<void>((resolve) => {
      const done = (): void => {
        process.off('SIGUSR2', done)
        signal.removeEventListener('abort', done)
        resolve()
      }
      if (signal.aborted) return resolve()
      signal.addEventListener('abort', done, { once: true })
      process.on('SIGUSR2', done)
    })
    throwIfAborted(signal)
  }
}
