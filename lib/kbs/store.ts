import { CofferError } from '../util/errors.js'

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
const KEY = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(\/[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}){0,2}$/

export function isValidStoreKey(key: string): boolean {
  return KEY.test(key) && !key.split('/').some((s) => s === '.' || s === '..')
}

/** Every namespace, in a fixed order (stores create one directory / partition per namespace). */
export const STORE_NAMESPACES: readonly StoreNamespace[] = [
  'resource',
  'policy',
  'reference-value',
  'session',
]

/**
 * The check every store runs at its boundary, whatever the KBS validated before: an unknown
 * namespace or a key that `isValidStoreKey` rejects is ERR_KBS_STORE_KEY_INVALID. The message
 * names the key only when it is short and printable, so a hostile key cannot flood a log.
 */
export function assertStoreKey(ns: StoreNamespace, key: string): void {
  assertStoreNamespace(ns)
  if (typeof key !== 'string' || !isValidStoreKey(key)) {
    const shown = typeof key === 'string' && key.length <= 64 && /^[\x20-\x7e]*$/.test(key) ? ` "${key}"` : ''
    throw new CofferError('ERR_KBS_STORE_KEY_INVALID', `invalid store key${shown}`)
  }
}

/** A namespace outside `STORE_NAMESPACES` is ERR_KBS_STORE_KEY_INVALID. */
export function assertStoreNamespace(ns: StoreNamespace): void {
  if (!(STORE_NAMESPACES as readonly unknown[]).includes(ns)) {
    throw new CofferError('ERR_KBS_STORE_KEY_INVALID', 'unknown store namespace')
  }
}

/** `expiresAt` must be epoch milliseconds (a safe integer); anything else is ERR_INVALID_ARGUMENT. */
export function assertPutOptions(options: PutOptions | undefined): void {
  const at = options?.expiresAt
  if (at !== undefined && !Number.isSafeInteger(at)) {
    throw new CofferError('ERR_INVALID_ARGUMENT', 'expiresAt must be an integer number of epoch milliseconds')
  }
}

/** True when an entry with this expiry is gone at `now` (an expiry equal to now counts as expired). */
export function isExpired(expiresAt: number | undefined, now: number): boolean {
  return expiresAt !== undefined && expiresAt <= now
}

/** Values are bytes: a string or any other type is ERR_INVALID_ARGUMENT (the KBS serializes). */
export function assertStoreValue(value: Uint8Array): void {
  if (!(value instanceof Uint8Array))
    throw new CofferError('ERR_INVALID_ARGUMENT', 'a store value must be bytes')
}
