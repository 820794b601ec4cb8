/** The content-addressed store of unpacked layers (see layer-store.ts for its lifecycle). */
export { openLayerStore, type LayerStore, type StoredLayer, type LayerLimits } from './layer-store.js'
export type { LayerMeta, ImageRecord } from './records.js'
export type { StoreLock, StoreLockOptions } from './store-lock.js'
