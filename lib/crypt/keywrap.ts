import type { Io } from '../util/io.js'

/**
 * Keys offered for encryption, by scheme, as parsed from `--encryption-key` (ocicrypt
 * `EncryptConfig.Parameters`). Each wrapper takes only the entries it understands.
 */
export interface EncryptConfig {
  /** Public keys for jwe: PEM/DER PKIX or JWK bytes, one entry per recipient. */
  pubkeys?: Uint8Array[]
  /** x509 certificates for pkcs7. */
  x509s?: Uint8Array[]
  /** Further scheme-specific parameters (gpg recipients, provider names, kbs URIs). */
  [name: string]: Uint8Array[] | undefined
}

/** Keys offered for decryption (ocicrypt `DecryptConfig.Parameters`). */
export interface DecryptConfig {
  /** Private keys: PEM/DER PKCS#8 or PKCS#1, or a private JWK. */
  privkeys?: Uint8Array[]
  /** Passwords for `privkeys`, same length; an empty entry means none. */
  privkeysPasswords?: Uint8Array[]
  /** Recipient certificates (pkcs7 needs key and certificate). */
  x509s?: Uint8Array[]
  [name: string]: Uint8Array[] | undefined
}

/**
 * Wraps a layer's private options (the JSON holding the symmetric key) for one recipient scheme,
 * mirroring ocicrypt's `keywrap.KeyWrapper`. Stateless; safe to share.
 *
 * Lifecycle: on encryption, `wrapKeys` is called once per layer with every recipient of this
 * scheme, and returns one opaque blob (ocicrypt puts all JWE recipients into one multi-recipient
 * JWE). On decryption, each comma-separated element of this scheme's annotation is passed to
 * `unwrapKey` with all offered keys, until one works. A failure to unwrap with the offered keys
 * throws ERR_CRYPT_DECRYPT_FAILED with a fixed message: no key ID, no reason.
 */
export interface KeyWrapper {
  /** `jwe`, `pkcs7`, `pgp`, `provider.<name>`, `kbs`. */
  readonly name: string
  /** The layer annotation this wrapper writes: `org.opencontainers.image.enc.keys.<name>`. */
  readonly annotationId: string
  /** Recipients of this scheme in `ec`; none means the wrapper writes nothing. */
  hasRecipients(ec: EncryptConfig): boolean
  wrapKeys(ec: EncryptConfig, privateOptions: Uint8Array, o?: Io): Promise<Uint8Array>
  unwrapKey(dc: DecryptConfig, wrapped: Uint8Array, o?: Io): Promise<Uint8Array>
  /** True when `dc` holds no key this wrapper could use, so it is not even tried. */
  noPossibleKeys(dc: DecryptConfig): boolean
  /**
   * What `coffer inspect` may say about the recipients of one wrapped blob, from its public parts
   * only (algorithms, curves, key IDs, certificate issuers): never key material.
   */
  describeRecipients?(wrapped: Uint8Array): string[]
}

export const ENC_ANNOTATION_PREFIX = 'org.opencontainers.image.enc.'
export const ENC_KEYS_ANNOTATION_PREFIX = 'org.opencontainers.image.enc.keys.'
export const PUBOPTS_ANNOTATION = 'org.opencontainers.image.enc.pubopts'
