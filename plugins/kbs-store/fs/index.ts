/**
 * Registration of the `fs` KBS store (STYLE §2): data only, importing this registers nothing.
 * `plugins/kbs-stores.ts` lists it; import `./fs-store.js` to use the store without a registry.
 */
import { z } from 'zod'
import { STORE_POINT, type KbsStore } from '../../../lib/kbs/store.js'
import { parseStoreSettings } from '../../../lib/kbs/store-settings.js'
import type { Registration } from '../../../lib/util/registry.js'
import { createFsStore } from './fs-store.js'

export { createFsStore, type FsStoreOptions } from './fs-store.js'

/** `fs` settings: `{ "root": "/var/lib/coffer/kbs" }`. */
export const FsStoreSettings = z.strictObject({ root: z.string().min(1) })

/** `kbs-store.v1/fs`: one file per entry, atomic replace, per-entry locks (the default store). */
export const plugin: Registration<Promise<KbsStore>, unknown> = {
  point: STORE_POINT,
  name: 'fs',
  init: async (settings) => createFsStore(parseStoreSettings(FsStoreSettings, settings, 'fs')),
}
