import { CofferError } from './errors.js'

/**
 * A plugin: data describing one implementation of an extension point (containerd's
 * `plugin.Registration`). Importing a plugin module registers nothing; `plugins/index.ts` is the
 * one list of built-ins, and a registry is built from a list, so tests build their own.
 */
export interface Registration<T, Config = void> {
  /** Versioned extension point, e.g. `keywrap.v1`. */
  readonly point: string
  readonly name: string
  init(config: Config): T
}

export interface PluginRegistry {
  get<T, C = void>(point: string, name: string): Registration<T, C>
  list<T, C = void>(point: string): Registration<T, C>[]
}

/** Builds a registry; a repeated point+name is ERR_PLUGIN_DUPLICATE. */
export function createRegistry(registrations: readonly Registration<unknown, never>[]): PluginRegistry {
  const byKey = new Map<string, Registration<unknown, never>>()
  for (const r of registrations) {
    const key = `${r.point}/${r.name}`
    if (byKey.has(key)) throw new CofferError('ERR_PLUGIN_DUPLICATE', `plugin ${key} is registered twice`)
    byKey.set(key, r)
  }
  return {
    get<T, C = void>(point: string, name: string): Registration<T, C> {
      const r = byKey.get(`${point}/${name}`)
      if (!r) {
        const known = [...byKey.values()].filter((x) => x.point === point).map((x) => x.name)
        throw new CofferError(
          'ERR_PLUGIN_NOT_FOUND',
          `no ${point} plugin "${name}" (known: ${known.join(', ') || 'none'})`,
        )
      }
      return r as unknown as Registration<T, C>
    },
    list<T, C = void>(point: string): Registration<T, C>[] {
      return [...byKey.values()].filter((r) => r.point === point) as unknown as Registration<T, C>[]
    },
  }
}
