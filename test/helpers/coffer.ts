/**
 * Runs the built `coffer` binary (dist/, made by `npm test`'s pretest) as a user would, so tests see
 * real exit codes, stdout and stderr.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const COFFER_BIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))

export interface CofferRun {
  code: number
  stdout: string
  stderr: string
  /** stdout parsed as JSON lines (with --json). */
  json(): Record<string, unknown>[]
}

export function coffer(
  args: string[],
  o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CofferRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [COFFER_BIN, ...args],
      { env: { ...process.env, ...o.env }, timeout: o.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0
        resolve({
          code,
          stdout,
          stderr,
          json: () =>
            stdout
              .split('\n')
              .filter((l) => l.trim())
              .map((l) => JSON.parse(l) as Record<string, unknown>),
        })
      },
    )
  })
}

/** The `result` object of a `--json` run. */
export function resultOf(run: CofferRun): Record<string, unknown> {
  const line = run.json().find((l) => 'result' in l)
  if (!line) throw new Error(`no result in output: ${run.stdout}\n${run.stderr}`)
  return line.result as Record<string, unknown>
}
