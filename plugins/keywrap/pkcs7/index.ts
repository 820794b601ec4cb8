/**
 * Registration of the pkcs7 key wrapper (STYLE §2): data only, importing this registers nothing.
 * `plugins/index.ts` lists it; import `./pkcs7-keywrap.js` to use the wrapper without a registry.
 * The ASN.1 code loads on the first wrap or unwrap (lib/crypt/lazy-keywrap.ts), not with the registry.
 */
import type { KeyWrapper } from '../../../lib/crypt/keywrap.js'
import { lazyKeyWrapper } from '../../../lib/crypt/lazy-keywrap.js'
import type { Registration } from '../../../lib/util/registry.js'
import { pkcs7Selection } from './selection.js'

export { PKCS7_ANNOTATION } from './selection.js'

/** `keywrap.v1/pkcs7`: ocicrypt-compatible CMS EnvelopedData (RSAES-PKCS1-v1_5; AES-128-GCM). No configuration. */
export const plugin: Registration<KeyWrapper> = {
  point: 'keywrap.v1',
  name: 'pkcs7',
  init: () =>
    lazyKeyWrapper(pkcs7Selection, async () => (await import('./pkcs7-keywrap.js')).createPkcs7KeyWrapper()),
}
