import { CofferError, exitCodeFor } from '../lib/util/errors.js'

/** What every command gets: how to print, and a signal that fires on Ctrl-C / SIGTERM. */
export interface CommandContext {
  readonly json: boolean
  readonly quiet: boolean
  readonly signal: AbortSignal
  /** Human output (stdout), suppressed by --quiet and --json. */
  say(line: string): void
  /** One JSON document per line on stdout, only with --json. */
  emit(value: unknown): void
  /** Whether progress bars make sense: a TTY on stderr, not quiet, not JSON. */
  readonly interactive: boolean
}

/**
 * Runs a command: wires signals to an AbortSignal, prints errors with their stable code, and
 * exits with the code of the error's class (lib/util/errors.ts). The command itself returns
 * normally or throws; it never calls process.exit.
 */
export async function run(
  opts: Record<string, unknown>,
  command: (ctx: CommandContext) => Promise<void>,
): Promise<void> {
  const json = opts.json === true
  const quiet = opts.quiet === true
  const controller = new AbortController()
  let interrupts = 0
  const onSignal = (sig: NodeJS.Signals): void => {
    // First signal: cancel and clean up; second: give up at once.
    if (++interrupts > 1) process.exit(130)
    controller.abort(new CofferError('ERR_CANCELED', `interrupted by ${sig}`))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const ctx: CommandContext = {
    json,
    quiet,
    signal: controller.signal,
    interactive: !json && !quiet && process.stderr.isTTY === true,
    say: (line) => {
      if (!json && !quiet) process.stdout.write(`${line}\n`)
    },
    emit: (value) => {
      if (json) process.stdout.write(`${JSON.stringify(value)}\n`)
    },
  }
  try {
    await command(ctx)
    process.exitCode = 0
  } catch (err) {
    const error =
      controller.signal.aborted && !(err instanceof CofferError && err.code !== 'ERR_CANCELED')
        ? new CofferError('ERR_CANCELED', 'canceled', { cause: err })
        : err
    await report(error, json)
    process.exitCode = exitCodeFor(error)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

async function report(err: unknown, json: boolean): Promise<void> {
  if (err instanceof CofferError) {
    // Loaded on failure only: start-up stays free of the hint table.
    const { hintFor } = await import('../lib/util/error-hints.js')
    // The message names the cause; the hint names the fix (the error's own, else its code's).
    const hint = err.hint ?? hintFor(err.code)
    if (json)
      process.stdout.write(
        `${JSON.stringify({ error: { code: err.code, class: err.errorClass, message: err.message, hint } })}\n`,
      )
    process.stderr.write(`coffer: ${err.message} [${err.code}]\n  hint: ${hint}\n`)
    return
  }
  // Not one of ours: a bug. Show the stack so it can be reported.
  if (json)
    process.stdout.write(
      `${JSON.stringify({ error: { code: 'ERR_INTERNAL', class: 'internal', message: String(err) } })}\n`,
    )
  process.stderr.write(
    `coffer: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  )
}
