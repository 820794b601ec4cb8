import { CofferError } from '../util/errors.js'
import { isValidStoreKey, type KbsStore, type PutOptions, type StoreNamespace } from './store.js'

/**
 * A KbsStore in process memory: sessions of a single KBS, and tests. Everything is lost when the
 * process ends, which is the point for the `session` namespace of a single replica.
 */
export function createMemoryStore(now: () => number = Date.now): KbsStore {
  const data = new Map<string, { value: Uint8Array; expiresAt?: number }>()
  const id = (ns: StoreNamespace, key: string): string => {
    if (!isValidStoreKey(key))
      throw new CofferError('ERR_KBS_STORE_KEY_INVALID', `invalid store key "${key.slice(0, 100)}"`)
    return `${ns}\u0000${key}`
  }
  const live = (k: string): Uint8Array | undefined => {
    const e = data.get(k)
    if (!e) return undefined
    if (e.expiresAt !== undefined && e.expiresAt <= now()) {
      data.delete(k)
      return undefined
    }
    return e.value
  }
  const entry = (value: Uint8Array, o?: PutOptions) => ({
    value: Uint8Array.from(value),
    ...(o?.expiresAt !== undefined ? { expiresAt: o.expiresAt } : {}),
  })
  return {
    async get(ns, key) {
      const v = live(id(ns, key))
      return v && Uint8Array.from(v)
    },
    async put(ns, key, value, options) {
      data.set(id(ns, key), entry(value, options))
    },
    async putIfAbsent(ns, key, value, options) {
      const k = id(ns, key)
      if (live(k)) return false
      data.set(k, entry(value, options))
      return true
    },
    async delete(ns, key) {
      const k = id(ns, key)
      const existed = live(k) !== undefined
      data.delete(k)
      return existed
    },
    async list(ns) {
      const prefix = `${ns}\u0000`
      return [...data.keys()]
        .filter((k) => k.startsWith(prefix) && live(k))
        .map((k) => k.slice(prefix.length))
        .sort()
    },
    async close() {},
  }
}
