import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { CofferError, type CofferErrorCode } from './errors.js'

/**
 * Whether a worker thread's entry file exists compiled. Run from the TypeScript sources (tests),
 * it does not, and a pool falls back to running its jobs on the calling thread.
 */
export function compiledWorkerExists(url: URL): boolean {
  return existsSync(fileURLToPath(url))
}

/** The error for a job whose worker thread died: its uncaught exception if it had one, else its exit code. */
export function workerDiedError(
  code: CofferErrorCode,
  crash: Error | undefined,
  exitCode: number,
): CofferError {
  return new CofferError(
    code,
    crash
      ? `layer worker failed: ${crash.message}`
      : `layer worker exited with code ${exitCode} before finishing its layer`,
  )
}
