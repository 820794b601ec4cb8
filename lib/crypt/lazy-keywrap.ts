import type { DecryptConfig, EncryptConfig, KeyWrapper } from './keywrap.js'
import type { Io } from '../util/io.js'

/** What a key wrapper answers without its crypto: its names, and whether a config concerns it. */
export type KeyWrapperSelection = Pick<
  KeyWrapper,
  'name' | 'annotationId' | 'hasRecipients' | 'noPossibleKeys'
>

/**
 * A key wrapper whose implementation loads on its first wrap or unwrap. pkcs7 (ASN.1 schemas) and
 * pgp (OpenPGP.js) cost ~0.1–0.3 s of start-up each; every encrypting or decrypting command lists
 * every wrapper, and most images use one scheme, so the others should cost nothing.
 */
export function lazyKeyWrapper(selection: KeyWrapperSelection, load: () => Promise<KeyWrapper>): KeyWrapper {
  let impl: Promise<KeyWrapper> | undefined
  const loaded = (): Promise<KeyWrapper> => (impl ??= load())
  return {
    name: selection.name,
    annotationId: selection.annotationId,
    hasRecipients: (ec: EncryptConfig) => selection.hasRecipients(ec),
    noPossibleKeys: (dc: DecryptConfig) => selection.noPossibleKeys(dc),
    wrapKeys: async (ec: EncryptConfig, privateOptions: Uint8Array, o?: Io) =>
      (await loaded()).wrapKeys(ec, privateOptions, o),
    unwrapKey: async (dc: DecryptConfig, wrapped: Uint8Array, o?: Io) =>
      (await loaded()).unwrapKey(dc, wrapped, o),
  }
}
