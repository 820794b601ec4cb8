import type { CommandContext } from '../run.js'
import type { CleanupStack } from './cleanup-stack.js'
import type { StepRunner } from './step-runner.js'

/** What every part of the demo shares: output, the timed steps, what to undo, where files go. */
export interface DemoSession {
  readonly ctx: CommandContext
  readonly steps: StepRunner
  readonly cleanup: CleanupStack
  /** The work directory: everything the demo writes goes below it. */
  readonly work: string
  /** Reports a child process the demo started (`{"process": {name, pid}}`): a test checks it is gone. */
  started(name: string, pid: number): void
}
