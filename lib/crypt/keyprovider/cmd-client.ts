/**
 * Calls a cmd provider (spec §2.3): spawn `path args…` without a shell, write the request JSON to
 * its stdin, read its stdout to EOF. Nothing of the request goes on argv or into the environment,
 * so secrets never show in `ps`. Every read is bounded, and the whole call has a deadline after
 * which the child is killed.
 */
import { spawn } from 'node:child_process'
import { CofferError } from '../../util/errors.js'
import { throwIfAborted, type Io } from '../../util/io.js'
import { MAX_PROVIDER_MESSAGE_BYTES, MAX_PROVIDER_STDERR_BYTES } from './limits.js'

/** What a provider said: a response, or a refusal (it ran and reported failure). */
export type ProviderReply = { ok: true; body: Buffer } | { ok: false; detail: string }

export interface ProviderCallOptions extends Io {
  /** The provider's name, for messages. */
  provider: string
  timeoutMs: number
}

/**
 * Runs one cmd provider call. Exit 0 is a reply; a non-zero exit or a signal is a refusal carrying
 * the provider's stderr (bounded, printable). Throws ERR_CRYPT_PROVIDER_FAILED when the program
 * cannot be started, ERR_CRYPT_PROVIDER_TIMEOUT past `timeoutMs`, ERR_CRYPT_PROVIDER_PROTOCOL when
 * stdout exceeds the message limit, and ERR_CANCELED on abort.
 */
export function callCmdProvider(
  cmd: { path: string; args: readonly string[] },
  request: Uint8Array,
  o: ProviderCallOptions,
): Promise<ProviderReply> {
  throwIfAborted(o.signal)
  return new Promise<ProviderReply>((resolve, reject) => {
    const child = spawn(cmd.path, [...cmd.args], { stdio: ['pipe', 'pipe', 'pipe'], shell: false })
    const stdout: Buffer[] = []
    let stdoutBytes = 0
    const stderr: Buffer[] = []
    let stderrBytes = 0
    let settled = false

    const finish = (err: CofferError | undefined, reply?: ProviderReply): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      o.signal?.removeEventListener('abort', onAbort)
      if (err) {
        // The child may still be running (a timeout, too much output, an abort): end it.
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        reject(err)
      } else resolve(reply!)
    }
    const onAbort = (): void =>
      finish(new CofferError('ERR_CANCELED', 'operation canceled', { cause: o.signal?.reason }))
    const timer = setTimeout(
      () =>
        finish(
          new CofferError(
            'ERR_CRYPT_PROVIDER_TIMEOUT',
            `key provider "${o.provider}" did not answer within ${o.timeoutMs} ms`,
          ),
        ),
      o.timeoutMs,
    )
    o.signal?.addEventListener('abort', onAbort, { once: true })

    child.on('error', (err: NodeJS.ErrnoException) =>
      finish(
        new CofferError(
          'ERR_CRYPT_PROVIDER_FAILED',
          `key provider "${o.provider}": cannot run ${cmd.path}: ${err.code ?? err.message}`,
          { cause: err },
        ),
      ),
    )
    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length
      if (stdoutBytes > MAX_PROVIDER_MESSAGE_BYTES) {
        finish(
          new CofferError(
            'ERR_CRYPT_PROVIDER_PROTOCOL',
            `the response of key provider "${o.provider}" is larger than the ${MAX_PROVIDER_MESSAGE_BYTES}-byte limit`,
          ),
        )
        return
      }
      stdout.push(chunk)
    })
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderrBytes >= MAX_PROVIDER_STDERR_BYTES) return
      const keep = chunk.subarray(0, MAX_PROVIDER_STDERR_BYTES - stderrBytes)
      stderrBytes += keep.length
      stderr.push(keep)
    })
    child.on('close', (code, signal) => {
      if (code === 0) {
        finish(undefined, { ok: true, body: Buffer.concat(stdout, stdoutBytes) })
        return
      }
      const how = signal ? `was killed by ${signal}` : `exited with status ${code}`
      const text = printable(Buffer.concat(stderr).toString('utf8'))
      finish(undefined, { ok: false, detail: text ? `${how}: ${text}` : how })
    })
    // A provider that exits without reading its stdin makes the write fail with EPIPE; its exit
    // status tells what happened, so the write error itself is not interesting.
    child.stdin.on('error', () => {})
    child.stdin.end(Buffer.from(request))
  })
}

/** stderr for a one-line message: control characters out, whitespace collapsed. */
function printable(s: string): string {
  return (
    s
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ')
      .replace(/\s+/g, ' ')
      .trim()
  )
}
