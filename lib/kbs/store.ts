/**
 * Where a KBS keeps its state. One interface for every backend (`fs`, `sealed`, `postgres`) so
 * several replicas can share one database. Keys are namespaced: resources
 * (`<repo>/<type>/<tag>`), the resource policy, reference values, and protocol sessions (which
 * expire). Values are opaque bytes; the KBS serializes.
 */
export const STORE_POINT = 'kbs-store.v1'

export type StoreNamespace = 'resource' | 'policy' | 'reference-value' | 'session'

export interface PutOptions {
  /** Epoch milliseconds after which `get` no longer returns the entry (sessions). */
  readonly expiresAt?: number
}

export interface KbsStore {
  /** The value, or undefined when absent or expired. */
  get(ns: StoreNamespace, key: string): Promise<Uint8Array | undefined>
  /** Creates or replaces, atomically: a reader sees the old or the new value, never a mix. */
  put(ns: StoreNamespace, key: string, value: Uint8Array, options?: PutOptions): Promise<void>
  /** Inserts only if absent (or expired); false when the key exists. Used for one-time nonces. */
  putIfAbsent(ns: StoreNamespace, key: string, value: Uint8Array, options?: PutOptions): Promise<boolean>
  /** True when something was deleted. */
  delete(ns: StoreNamespace, key: string): Promise<boolean>
  /** Keys in the namespace (unexpired), sorted. */
  list(ns: StoreNamespace): Promise<string[]>
  /** Releases connections and handles; idempotent. */
  close(): Promise<void>
}

/**
 * Keys are validated by the KBS before they reach a store, but a store must still never map a key
 * outside its namespace (no path traversal in `fs`, parameters only in SQL): see
 * `assertStoreKey`.
 */
const KEY = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}(\/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}){0,2}$/

export function isValidStoreKey(key: string): boolean {
  return KEY.test(key) && !key.split('/').some((s) => s === '.' || s === '..')
}
