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
