/**
 * A KbsStore that fails on demand, for the KBS server's fault and fuzz tests: it wraps a real store
 * and throws ERR_KBS_STORE_UNAVAILABLE (as a lost database would) for the calls a rule selects,
 * either before the call reaches the real store or after it ran (the write happened, the answer
 * was lost). Every call is recorded. `close()` is recorded but never fails, so clean-up works.
 *
 * ```ts
 * const store = faultyStore(await createFsStore({ root }))
 * store.failNext(1, { method: 'get' })        // the next get fails
 * store.failWhen((c) => c.ns === 'session')   // every session call fails until heal()
 * store.failNext(1, { method: 'put', after: true })  // stored, but the caller sees a failure
 * store.heal()
 * ```
 */
import type { KbsStore, PutOptions, StoreNamespace } from '../../lib/kbs/store.js'
import { CofferError } from '../../lib/util/errors.js'

export type StoreMethod = 'get' | 'put' | 'putIfAbsent' | 'delete' | 'list' | 'close'

export interface StoreCall {
  method: StoreMethod
  ns: StoreNamespace
  /** Absent for `list` and `close`. */
  key?: string
}

export interface FaultFilter {
  method?: StoreMethod
  ns?: StoreNamespace
  key?: string
  /** Fail after the real store ran the call (default: before, so nothing changes). */
  after?: boolean
}

export interface FaultyStore extends KbsStore {
  /** The next `count` calls matching `filter` fail. Rules add up; the oldest matching rule fires first. */
  failNext(count?: number, filter?: FaultFilter): void
  /** Every call `predicate` selects fails until `heal()`. */
  failWhen(predicate: (call: StoreCall) => boolean, o?: { after?: boolean }): void
  /** Every call fails until `heal()` (`close` excepted). */
  failAll(): void
  /** Drops every rule. */
  heal(): void
  /** Every call so far, failed ones included, in order. */
  readonly calls: readonly StoreCall[]
  /** How many calls were failed on purpose. */
  readonly injected: number
}

/** The error a faulty call throws: the same code and class a real outage gives. */
export const INJECTED_FAULT_MESSAGE = 'injected kbs store fault'

interface Rule {
  matches(call: StoreCall): boolean
  after: boolean
  /** Calls left before the rule expires; Infinity for failWhen/failAll. */
  remaining: number
}

export function faultyStore(inner: KbsStore): FaultyStore {
  const rules: Rule[] = []
  const calls: StoreCall[] = []
  let injected = 0

  /** The rule that fires for `call` (consuming one of its uses), if any. */
  const take = (call: StoreCall): Rule | undefined => {
    if (call.method === 'close') return undefined
    const i = rules.findIndex((r) => r.remaining > 0 && r.matches(call))
    if (i < 0) return undefined
    const rule = rules[i]!
    rule.remaining--
    if (rule.remaining === 0) rules.splice(i, 1)
    return rule
  }
  const fault = () => {
    injected++
    return new CofferError('ERR_KBS_STORE_UNAVAILABLE', INJECTED_FAULT_MESSAGE)
  }
  const run = async <T>(call: StoreCall, work: () => Promise<T>): Promise<T> => {
    calls.push(call)
    const rule = take(call)
    if (rule && !rule.after) throw fault()
    const result = await work()
    if (rule) throw fault()
    return result
  }

  return {
    get: (ns, key) => run({ method: 'get', ns, key }, () => inner.get(ns, key)),
    put: (ns, key, value: Uint8Array, options?: PutOptions) =>
      run({ method: 'put', ns, key }, () => inner.put(ns, key, value, options)),
    putIfAbsent: (ns, key, value: Uint8Array, options?: PutOptions) =>
      run({ method: 'putIfAbsent', ns, key }, () => inner.putIfAbsent(ns, key, value, options)),
    delete: (ns, key) => run({ method: 'delete', ns, key }, () => inner.delete(ns, key)),
    list: (ns) => run({ method: 'list', ns }, () => inner.list(ns)),
    close: () => run({ method: 'close', ns: 'resource' }, () => inner.close()),
    failNext(count = 1, filter: FaultFilter = {}) {
      rules.push({
        matches: (c) =>
          (filter.method === undefined || c.method === filter.method) &&
          (filter.ns === undefined || c.ns === filter.ns) &&
          (filter.key === undefined || c.key === filter.key),
        after: filter.after ?? false,
        remaining: count,
      })
    },
    failWhen(predicate, o = {}) {
      rules.push({ matches: predicate, after: o.after ?? false, remaining: Infinity })
    },
    failAll() {
      rules.push({ matches: () => true, after: false, remaining: Infinity })
    },
    heal() {
      rules.length = 0
    },
    get calls() {
      return calls
    },
    get injected() {
      return injected
    },
  }
}
