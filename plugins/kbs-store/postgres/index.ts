/**
 * Registration of the `postgres` KBS store (STYLE §2): data only, importing this registers nothing.
 * `plugins/kbs-stores.ts` lists it; import `./postgres-store.js` to use the store without a registry.
 */
import { STORE_POINT, type KbsStore } from '../../../lib/kbs/store.js'
import type { Registration } from '../../../lib/util/registry.js'
import { createPostgresStore } from './postgres-store.js'
import type { PostgresStoreSettingsInput } from './settings.js'

export { createPostgresStore } from './postgres-store.js'
export { PostgresStoreSettings, poolConfigFor, type PostgresStoreSettingsInput } from './settings.js'
export { TABLE } from './schema.js'

/** `kbs-store.v1/postgres`: one table shared by every KBS replica of a cluster. */
export const plugin: Registration<Promise<KbsStore>, unknown> = {
  point: STORE_POINT,
  name: 'postgres',
  init: async (settings) => createPostgresStore(settings as PostgresStoreSettingsInput),
}
