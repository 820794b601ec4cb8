/** Types of scripts/gen-command-reference.mjs, for the tests that reuse its walk of the CLI. */
export interface CommandHelp {
  /** The command words after `coffer` (empty for `coffer` itself). */
  path: string[]
  /** What `coffer … --help` prints through a pipe. */
  help: string
}
export const CLI: string
export const REFERENCE: string
export function collectCommands(cli?: string): Promise<CommandHelp[]>
