/**
 * Registration of the pgp key wrapper (STYLE §2): data only, importing this registers nothing.
 * `plugins/index.ts` lists it; import `./pgp-keywrap.js` to use the wrapper without a registry.
 * OpenPGP.js loads on the first wrap or unwrap (lib/crypt/lazy-keywrap.ts), not with the registry.
 */
import type { KeyWrapper } from '../../../lib/crypt/keywrap.js'
import { lazyKeyWrapper } from '../../../lib/crypt/lazy-keywrap.js'
import type { Registration } from '../../../lib/util/registry.js'
import { pgpSelection } from './selection.js'

export { PGP_ANNOTATION } from './selection.js'

/**
 * `keywrap.v1/pgp`: ocicrypt-compatible OpenPGP (binary message, PKESK v3 + SEIPD v1, AES-256, no
 * compression). No configuration.
 */
export const plugin: Registration<KeyWrapper> = {
  point: 'keywrap.v1',
  name: 'pgp',
  init: () =>
    lazyKeyWrapper(pgpSelection, async () => (await import('./pgp-keywrap.js')).createPgpKeyWrapper()),
}
