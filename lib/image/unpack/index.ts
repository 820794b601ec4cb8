/** The safe layer unpacker: one layer's tar stream → a directory. */
export { unpackLayer } from './unpack-layer.js'
export { sanitizeEntryPath, resolveInside, ensureNoSymlinkOnPath } from './safe-path.js'
export type * from './types.js'
