/**
 * Registration of the pkcs7 key wrapper (STYLE §2): data only, importing this registers nothing.
 * `plugins/index.ts` lists it; import `./pkcs7-keywrap.js` to use the wrapper without a registry.
 */
import type { KeyWrapper } from '../../../lib/crypt/keywrap.js'
import type { Registration } from '../../../lib/util/registry.js'
import { createPkcs7KeyWrapper } from './pkcs7-keywrap.js'

export { createPkcs7KeyWrapper, MAX_PKCS7_BYTES, PKCS7_ANNOTATION } from './pkcs7-keywrap.js'

/** `keywrap.v1/pkcs7`: ocicrypt-compatible CMS EnvelopedData (RSAES-PKCS1-v1_5; AES-128-GCM). No configuration. */
export const plugin: Registration<KeyWrapper> = {
  point: 'keywrap.v1',
  name: 'pkcs7',
  init: () => createPkcs7KeyWrapper(),
}
