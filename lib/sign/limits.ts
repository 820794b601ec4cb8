/**
 * Size limits for signature material read from untrusted places (containers/image
 * `internal/iolimits`). Past a limit the reader fails with a coded error instead of buffering.
 */
import { KiB, MiB } from '../util/limits.js'

/** One signature blob or sigstore payload (c/image `MaxSignatureBodySize`). */
export const MAX_SIGNATURE_BYTES = 4 * MiB
/** Signatures read per image: lookaside `signature-N` files, or layers of a `.sig` manifest (cosign's cap). */
export const MAX_SIGNATURES = 1000
/** policy.json (c/image has no limit; a real policy is a few KiB). */
export const MAX_POLICY_BYTES = 4 * MiB
/** One registries.d YAML file. */
export const MAX_REGISTRIES_D_FILE_BYTES = 1 * MiB
/** A key file: GPG keyring, PEM public key, cosign private key. */
export const MAX_KEY_FILE_BYTES = 4 * MiB
/** A passphrase file. */
export const MAX_PASSPHRASE_BYTES = 64 * KiB
