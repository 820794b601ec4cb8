/**
 * Child processes for the driver: short commands (`coffer umount`, `coffer fs init`, mount(8))
 * run to completion with a timeout; their stderr (which never carries secrets: coffer prints no
 * key material) becomes the error message.
 */
import { spawn } from 'node:child_process'
import { CofferError, type CofferErrorCode } from '../util/errors.js'
import type { Io } from '../util/io.js'

/** How much of a failed command's stderr is kept for the error message. */
const STDERR_TAIL_CHARS = 2000

export interface CommandResult {
  stdout: Buffer
}

/**
 * Runs `argv` to completion; a non-zero exit, a timeout or an abort is `ERR_CSI_MOUNT_FAILED`.
 * `stdin`, if given, is written to the child's standard input (a pipe: secrets passed this way
 * reach neither the disk nor argv).
 */
export function runCommand(
  argv: readonly string[],
  o: Io & {
    stdin?: Uint8Array
    timeoutMs: number
    maxStdout?: number
    /** Error codes for some of coffer's exit codes (lib/util/errors.ts), instead of ERR_CSI_MOUNT_FAILED. */
    exitCodes?: Readonly<Record<number, CofferErrorCode>>
  },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv
    const child = spawn(cmd!, args, {
      stdio: [o.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      ...(o.signal ? { signal: o.signal } : {}),
      timeout: o.timeoutMs,
      killSignal: 'SIGKILL',
    })
    const out: Buffer[] = []
    let outBytes = 0
    let err = ''
    child.stdout!.on('data', (c: Buffer) => {
      outBytes += c.length
      if (outBytes <= (o.maxStdout ?? 1 << 20)) out.push(c)
    })
    child.stderr!.on('data', (c: Buffer) => {
      err = (err + c.toString('utf8')).slice(-STDERR_TAIL_CHARS)
    })
    if (o.stdin && child.stdin) {
      child.stdin.on('error', () => {}) // a child that exits without reading: its exit code tells
      child.stdin.end(o.stdin)
    }
    child.on('error', (cause) =>
      reject(new CofferError('ERR_CSI_MOUNT_FAILED', `${cmd} ${args[0] ?? ''}: ${cause.message}`, { cause })),
    )
    child.on('close', (code, signal) => {
      if (code === 0 && outBytes <= (o.maxStdout ?? 1 << 20)) resolve({ stdout: Buffer.concat(out) })
      else
        reject(
          new CofferError(
            (code !== null && o.exitCodes?.[code]) || 'ERR_CSI_MOUNT_FAILED',
            `${describe(argv)} failed (${signal ?? `exit ${code}`}): ${err.trim() || 'no output'}`,
          ),
        )
    })
  })
}

/** The command and its subcommand words, for messages: no flag values (they may be paths to keys). */
export function describe(argv: readonly string[]): string {
  const words = argv.slice(0, 4).filter((a) => !a.startsWith('-') && !a.startsWith('/'))
  return words.join(' ') || String(argv[0])
}
