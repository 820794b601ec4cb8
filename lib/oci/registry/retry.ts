import { setTimeout as sleep } from 'node:timers/promises'
import { CofferError } from '../../util/errors.js'

/** How often and how long to retry transient registry failures (containers/image `retry.Options`). */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  /** Upper bound on a server's `Retry-After`, so a hostile registry cannot park us for hours. */
  readonly maxRetryAfterMs: number
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 5,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
}

/** HTTP statuses worth another try: timeouts, rate limits, gateway and server hiccups. */
export function isRetryableStatus(status: number): boolean {
  return (
    status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504
  )
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  // A body cut short of its Content-Length: a dropped connection seen from the parser.
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
])

/** A dropped or timed-out connection (also when wrapped in `cause`), not a protocol answer. */
export function isRetryableNetworkError(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0;
    e && depth < 5;
    depth++
  ) {
    if (typeof e.code === 'string' && RETRYABLE_CODES.has(e.code)) return true
    if (e.message === 'terminated' || e.message === 'other side closed') return true
    e = e.cause as typeof e
  }
  return false
}

/** Exponential backoff with full jitter; a server's Retry-After (seconds or HTTP date) wins when given. */
export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfter?: string): number {
  if (retryAfter !== undefined) {
    const seconds = Number(retryAfter)
    const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(retryAfter) - Date.now()
    if (Number.isFinite(ms) && ms >= 0) return Math.min(ms, policy.maxRetryAfterMs)
  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt)
  return ceiling / 2 + Math.random() * (ceiling / 2)
}

/** Waits, but wakes with ERR_CANCELED when the signal fires. */
export async function waitFor(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, signal ? { signal } : {})
  } catch (cause) {
    throw new CofferError('ERR_CANCELED', 'operation canceled', { cause })
  }
}
