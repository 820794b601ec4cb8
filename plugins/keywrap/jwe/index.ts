/**
 * Registration of the jwe key wrapper (STYLE §2): data only, importing this registers nothing.
 * `plugins/index.ts` lists it; import `./jwe-keywrap.js` to use the wrapper without a registry.
 */
import type { KeyWrapper } from '../../../lib/crypt/keywrap.js'
import type { Registration } from '../../../lib/util/registry.js'
import { createJweKeyWrapper } from './jwe-keywrap.js'

export { createJweKeyWrapper, JWE_ANNOTATION } from './jwe-keywrap.js'

/** `keywrap.v1/jwe`: ocicrypt-compatible JWE (RSA-OAEP, ECDH-ES+A256KW; A256GCM). No configuration. */
export const plugin: Registration<KeyWrapper> = {
  point: 'keywrap.v1',
  name: 'jwe',
  init: () => createJweKeyWrapper(),
}
