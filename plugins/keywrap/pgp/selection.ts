/**
 * The pgp wrapper's names and parameter keys, and which configs concern it: what the registry
 * needs without loading OpenPGP.js (see lib/crypt/lazy-keywrap.ts). Parameters: pgp-keywrap.ts.
 */
import type { DecryptConfig, EncryptConfig } from '../../../lib/crypt/keywrap.js'
import type { KeyWrapperSelection } from '../../../lib/crypt/lazy-keywrap.js'

/** The layer annotation this wrapper writes and reads. */
export const PGP_ANNOTATION = 'org.opencontainers.image.enc.keys.pgp'

/** EncryptConfig: public key files (coffer's convention, see pgp-keywrap.ts). */
export const EC_GPG_PUBKEYS = 'gpg-pubkeys'
/** EncryptConfig: names or e-mail addresses to pick from `gpg-pubkeyringfile` (ocicrypt). */
export const EC_GPG_RECIPIENTS = 'gpg-recipients'
/** EncryptConfig: a public keyring as `gpg --export` writes it (ocicrypt). */
export const EC_GPG_PUBKEYRINGFILE = 'gpg-pubkeyringfile'
/** DecryptConfig: secret keys or keyrings (ocicrypt). */
export const DC_GPG_PRIVATEKEYS = 'gpg-privatekeys'
/** DecryptConfig: passwords for `gpg-privatekeys`, by position (ocicrypt). */
export const DC_GPG_PRIVATEKEYS_PASSWORDS = 'gpg-privatekeys-passwords'

export const pgpSelection: KeyWrapperSelection = {
  name: 'pgp',
  annotationId: PGP_ANNOTATION,
  hasRecipients: (ec: EncryptConfig) =>
    (ec[EC_GPG_PUBKEYS]?.length ?? 0) > 0 || (ec[EC_GPG_RECIPIENTS]?.length ?? 0) > 0,
  /** As ocicrypt's NoPossibleKeys: pgp needs `gpg-privatekeys`; whether they fit shows only on unwrap. */
  noPossibleKeys: (dc: DecryptConfig) => (dc[DC_GPG_PRIVATEKEYS]?.length ?? 0) === 0,
}
