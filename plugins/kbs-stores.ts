/**
 * The KBS store extension point (`kbs-store.v1`): the built-in stores and the one function that
 * opens a store from configuration. Kept beside `plugins/index.ts` (which lists the key wrappers)
 * so the KBS loads the store plugins, and `pg` and the AWS Encryption SDK with them, only when it
 * opens a store.
 *
 * Configuration (the KBS config file's `[store]` table, or JSON):
 * ```json
 * { "store": "fs", "settings": { "root": "/var/lib/coffer/kbs" } }
 * { "store": "postgres", "settings": { "connectionString": "postgres://kbs@db/kbs", "passwordFile": "/run/secrets/pw" } }
 * { "store": "sealed", "settings": { "masterKeyFile": "/etc/coffer/kbs.key",
 *     "inner": { "store": "fs", "settings": { "root": "/var/lib/coffer/kbs" } } } }
 * ```
 */
import { z } from 'zod'
import { STORE_POINT, type KbsStore } from '../lib/kbs/store.js'
import { parseStoreSettings } from '../lib/kbs/store-settings.js'
import { createRegistry, type PluginRegistry, type Registration } from '../lib/util/registry.js'
import { plugin as fsStore } from './kbs-store/fs/index.js'
import { plugin as postgresStore } from './kbs-store/postgres/index.js'
import {
  plugin as sealedStore,
  SealedStoreSettings,
  type SealedStoreConfig,
} from './kbs-store/sealed/index.js'

export { STORE_POINT }

/** Every built-in store, `fs` (the default) first. */
export const kbsStorePlugins: readonly Registration<unknown, never>[] = [
  fsStore,
  sealedStore,
  postgresStore,
] as Registration<unknown, never>[]

/** `{ store, settings }`; `store` defaults to `fs`. */
export const KbsStoreConfig = z.strictObject({
  store: z.string().min(1).default('fs'),
  settings: z.unknown(),
})
export type KbsStoreConfig = z.input<typeof KbsStoreConfig>

const defaultRegistry = createRegistry(kbsStorePlugins)

/** Names of the built-in stores. */
export function kbsStoreNames(registry: PluginRegistry = defaultRegistry): string[] {
  return registry.list(STORE_POINT).map((r) => r.name)
}

/**
 * Opens the store a configuration names (ERR_CONFIG_INVALID for bad settings, ERR_PLUGIN_NOT_FOUND
 * for an unknown store, ERR_KBS_STORE_UNAVAILABLE when its backing cannot be reached). A `sealed`
 * store's inner store is opened first and handed over, since plugins never import each other.
 */
export async function createKbsStore(
  config: unknown,
  registry: PluginRegistry = defaultRegistry,
): Promise<KbsStore> {
  const { store, settings } = parseStoreSettings(KbsStoreConfig, config, 'kbs store')
  if (store === 'sealed') {
    const { inner } = parseStoreSettings(SealedStoreSettings, settings, 'sealed')
    const innerStore = await createKbsStore(inner, registry)
    return registry
      .get<Promise<KbsStore>, SealedStoreConfig>(STORE_POINT, 'sealed')
      .init({ settings, inner: innerStore })
  }
  return registry.get<Promise<KbsStore>, unknown>(STORE_POINT, store).init(settings)
}
