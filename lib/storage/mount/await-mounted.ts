/**
 * Waiting for a `coffer mount … --json` child to be serving: it prints `{"mounted": …}` once the
 * filesystem answers. Shared by the CSI node plugin and `coffer demo`, which each turn a failure
 * into their own error code (the reason is what differs, not the wait).
 */
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

export type MountWaitFailure = 'timeout' | 'canceled' | 'exited' | 'spawn-failed'

/** Why the child never reported its mount; `message` describes it without the caller's context. */
export class MountWaitError extends Error {
  constructor(
    readonly reason: MountWaitFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** True for the `{"mounted": …}` line of `coffer mount --json`. */
export function isMountedEvent(line: string): boolean {
  try {
    const v = JSON.parse(line) as unknown
    return typeof v === 'object' && v !== null && 'mounted' in v
  } catch {
    return false
  }
}

/**
 * Resolves when `child` prints its mounted event; rejects with a MountWaitError when it exits or
 * cannot start first, after `timeoutMs`, or on `signal`. It never kills the child: the caller owns
 * it and decides how to stop it.
 */
export function awaitMounted(
  child: ChildProcess,
  o: { timeoutMs: number; signal?: AbortSignal | undefined },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    const settle = (err?: MountWaitError): void => {
      clearTimeout(timer)
      o.signal?.removeEventListener('abort', onAbort)
      child.off('exit', onExit)
      child.off('error', onError)
      lines.off('line', onLine)
      if (err) reject(err)
      else resolve()
    }
    const onLine = (line: string): void => {
      if (isMountedEvent(line)) settle()
    }
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      settle(new MountWaitError('exited', `exited (${signal ?? `exit ${code}`})`))
    const onError = (err: Error): void =>
      settle(new MountWaitError('spawn-failed', err.message, { cause: err }))
    const onAbort = (): void => settle(new MountWaitError('canceled', 'canceled'))
    const timer = setTimeout(
      () => settle(new MountWaitError('timeout', `did not come up within ${o.timeoutMs / 1000}s`)),
      o.timeoutMs,
    )
    lines.on('line', onLine)
    child.once('exit', onExit)
    child.once('error', onError)
    if (o.signal?.aborted) onAbort()
    else o.signal?.addEventListener('abort', onAbort, { once: true })
  })
}
