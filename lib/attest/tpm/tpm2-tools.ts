import { spawn } from 'node:child_process'
import { CofferError } from '../../util/errors.js'
import type { Io } from '../../util/io.js'
import { MAX_TPM_TOOL_OUTPUT_BYTES, TPM_TOOL_TIMEOUT_MS } from '../../util/limits.js'

/** What one tpm2-tools run printed (each stream cut at MAX_TPM_TOOL_OUTPUT_BYTES). */
export interface ToolOutput {
  readonly stdout: string
  readonly stderr: string
}

export interface RunToolOptions extends Io {
  /** TCTI string passed as `-T` (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`). */
  readonly tcti: string
  readonly timeoutMs?: number
}

/**
 * Runs one tpm2-tools program (`tpm2_quote`, …) with an argument array, never a shell, so no
 * setting can inject a command. Output is bounded and the run is killed at the timeout or when
 * `signal` fires. A missing tool, a non-zero exit or a timeout is ERR_ATTEST_DEVICE_FAILED whose
 * message carries the tool's stderr, since that is the only place the TSS says what went wrong.
 */
export function runTpm2Tool(tool: string, args: readonly string[], o: RunToolOptions): Promise<ToolOutput> {
  return oneAtATime(o.tcti, () => spawnTool(tool, args, o))
}

/**
 * The tail of the queue of runs per TCTI. Without a resource manager (swtpm, /dev/tpm0) the TPM
 * has room for only a few sessions and objects; two tools at once fail with
 * TPM_RC_SESSION_MEMORY (seen with six parallel quotes on swtpm). So this process runs one tool
 * per TPM at a time. Other processes sharing a TPM need /dev/tpmrm0.
 */
const queues = new Map<string, Promise<unknown>>()

function oneAtATime<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(key) ?? Promise.resolve()
  const run = prev.then(fn, fn)
  const tail = run.catch(() => undefined)
  queues.set(key, tail)
  void tail.then(() => {
    if (queues.get(key) === tail) queues.delete(key)
  })
  return run
}

function spawnTool(tool: string, args: readonly string[], o: RunToolOptions): Promise<ToolOutput> {
  const timeoutMs = o.timeoutMs ?? TPM_TOOL_TIMEOUT_MS
  return new Promise((resolve, reject) => {
    const child = spawn(tool, ['-T', o.tcti, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const stdout = boundedCollector()
    const stderr = boundedCollector()
    child.stdout.on('data', stdout.push)
    child.stderr.on('data', stderr.push)

    let why: string | undefined
    const kill = (reason: string): void => {
      why ??= reason
      child.kill('SIGKILL')
    }
    const timer = setTimeout(() => kill(`timed out after ${timeoutMs} ms`), timeoutMs)
    const onAbort = (): void => kill('canceled')
    o.signal?.addEventListener('abort', onAbort, { once: true })
    const done = (): void => {
      clearTimeout(timer)
      o.signal?.removeEventListener('abort', onAbort)
    }

    child.on('error', (err: NodeJS.ErrnoException) => {
      done()
      const hint = err.code === 'ENOENT' ? ' (is tpm2-tools installed?)' : ''
      reject(
        new CofferError('ERR_ATTEST_DEVICE_FAILED', `cannot run ${tool}${hint}: ${err.message}`, {
          cause: err,
        }),
      )
    })
    child.on('close', (code, sig) => {
      done()
      const out = { stdout: stdout.text(), stderr: stderr.text() }
      if (why === 'canceled') {
        reject(new CofferError('ERR_CANCELED', `${tool} canceled`, { cause: o.signal?.reason }))
      } else if (why !== undefined || code !== 0) {
        const status = why ?? (code === null ? `killed by ${sig}` : `exit ${code}`)
        const detail = out.stderr.trim() || out.stdout.trim() || 'no output'
        reject(new CofferError('ERR_ATTEST_DEVICE_FAILED', `${tool} failed (${status}): ${detail}`))
      } else {
        resolve(out)
      }
    })
  })
}

/** Collects a stream's chunks up to the output limit and silently drops the rest. */
function boundedCollector(): { push: (chunk: Buffer) => void; text: () => string } {
  const chunks: Buffer[] = []
  let size = 0
  return {
    push: (chunk: Buffer) => {
      const room = MAX_TPM_TOOL_OUTPUT_BYTES - size
      if (room <= 0) return
      const kept = chunk.length > room ? chunk.subarray(0, room) : chunk
      chunks.push(kept)
      size += kept.length
    },
    text: () => Buffer.concat(chunks, size).toString('utf8'),
  }
}

/** `0x81010002` as tpm2-tools spells a handle. */
export function handleArg(handle: number): string {
  return `0x${handle.toString(16).padStart(8, '0')}`
}
