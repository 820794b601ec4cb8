/**
 * Policy key paths (`keyPath`, `keyPaths`) are resolved by a caller-supplied function, so the
 * in-guest image service can serve `kbs:///repo/type/tag` from its KBS while the CLI reads files.
 */
import { CofferError } from '../util/errors.js'
import { readOptionalFileLimited, type Io } from '../util/io.js'
import { MAX_KEY_FILE_BYTES } from './limits.js'

/** Returns the bytes a policy key path names. Throw ERR_SIGN_KEY_INVALID (or a storage error) when it cannot. */
export type KeyResolver = (path: string, o?: Io) => Promise<Uint8Array>

/** Local files only; a URI (`kbs:///…`, `https://…`) is refused with a clear error. */
export const fileKeyResolver: KeyResolver = async (path) => {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path))
    throw new CofferError(
      'ERR_SIGN_UNSUPPORTED',
      `key path ${path} is a URI; only the image service (with a KBS) resolves those`,
    )
  const data = await readOptionalFileLimited(
    path,
    MAX_KEY_FILE_BYTES,
    `key file ${path}`,
    'ERR_SIGN_KEY_INVALID',
  )
  if (!data) throw new CofferError('ERR_SIGN_KEY_INVALID', `key file ${path} does not exist`)
  return data
}
