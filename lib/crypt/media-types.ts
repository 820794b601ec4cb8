import { toOciMediaType } from '../oci/media-types.js'

/** ocicrypt marks an encrypted layer by appending this to its media type (`spec/spec.go`). */
export const ENCRYPTED_SUFFIX = '+encrypted'

export function isEncryptedMediaType(mt: string): boolean {
  return mt.endsWith(ENCRYPTED_SUFFIX)
}

/**
 * Docker layer types have no encrypted form; as containers/image and imgcrypt do, an encrypted
 * layer is always an OCI one (`…tar+gzip+encrypted`), so its manifest becomes OCI too.
 */
/** The media type of the encrypted form of a layer of type `mt`. */
export function encryptedMediaType(mt: string): string {
  return isEncryptedMediaType(mt) ? mt : `${toOciMediaType(mt)}${ENCRYPTED_SUFFIX}`
}

/** The media type of a decrypted layer (containers/image `getDecryptedMediaType`: strip the suffix). */
export function decryptedMediaType(mt: string): string {
  return isEncryptedMediaType(mt) ? mt.slice(0, -ENCRYPTED_SUFFIX.length) : mt
}
