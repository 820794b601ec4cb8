/**
 * The pkcs7 wrapper's name and which configs concern it: what the registry needs without loading
 * the ASN.1 schemas (see lib/crypt/lazy-keywrap.ts). The wrapper itself: pkcs7-keywrap.ts.
 */
import type { DecryptConfig, EncryptConfig } from '../../../lib/crypt/keywrap.js'
import type { KeyWrapperSelection } from '../../../lib/crypt/lazy-keywrap.js'

/** The layer annotation this wrapper writes and reads. */
export const PKCS7_ANNOTATION = 'org.opencontainers.image.enc.keys.pkcs7'

export const pkcs7Selection: KeyWrapperSelection = {
  name: 'pkcs7',
  annotationId: PKCS7_ANNOTATION,
  hasRecipients: (ec: EncryptConfig) => (ec.x509s?.length ?? 0) > 0,
  /** ocicrypt checks `privkeys` only; without a certificate nothing could match either. */
  noPossibleKeys: (dc: DecryptConfig) => (dc.privkeys?.length ?? 0) === 0 || (dc.x509s?.length ?? 0) === 0,
}
