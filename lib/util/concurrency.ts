import { setMaxListeners } from 'node:events'

/**
 * Runs `work` over `items` with at most `limit` in flight. The first failure aborts the signal
 * handed to the others and is rethrown once everything in flight has settled, so no task is left
 * running behind the caller's back.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  work: (item: T, signal: AbortSignal) => Promise<void>,
  parent?: AbortSignal,
): Promise<void> {
  const controller = new AbortController()
  // Every task's streams and requests listen on this one signal; that is expected, not a leak.
  setMaxListeners(0, controller.signal)
  const onParentAbort = (): void => controller.abort(parent?.reason)
  parent?.addEventListener('abort', onParentAbort, { once: true })
  if (parent?.aborted) controller.abort(parent.reason)
  let next = 0
  let failure: { error: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (!failure && !controller.signal.aborted && next < items.length) {
      const item = items[next++] as T
      try {
        await work(item, controller.signal)
      } catch (error) {
        failure ??= { error }
        controller.abort(error)
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker))
  } finally {
    parent?.removeEventListener('abort', onParentAbort)
  }
  if (failure) throw failure.error
  if (parent?.aborted) throw parent.reason
}

/**
 * Results that complete in any order, read back in index order: `put(i, v)` as each finishes,
 * `fail(err)` to end the reader, and `for await (const v of q)` yields item 0, 1, … as soon as
 * each and every one before it is in. A consumer can start on the lower items of a pipeline
 * while the upper ones are still running.
 */
export function inOrder<T>(count: number): {
  put(index: number, value: T): void
  fail(err: unknown): void
  [Symbol.asyncIterator](): AsyncIterator<T>
} {
  const slots = Array.from({ length: count }, () => {
    const slot = {} as { promise: Promise<T>; resolve(v: T): void; reject(err: unknown): void }
    slot.promise = new Promise<T>((resolve, reject) => Object.assign(slot, { resolve, reject }))
    return slot
  })
  // A failure may come when nobody reads any more; it must not count as unhandled.
  for (const s of slots) s.promise.catch(() => undefined)
  return {
    put: (i, v) => slots[i]?.resolve(v),
    fail: (err) => {
      for (const s of slots) s.reject(err)
    },
    async *[Symbol.asyncIterator]() {
      for (const s of slots) yield await s.promise
    },
  }
}
