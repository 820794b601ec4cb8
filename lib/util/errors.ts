/**
 * coffer's one error type. Every failure a user can cause carries a stable `code`
 * (`ERR_<AREA>_<WHAT>`); each code belongs to a coarse class (containerd's errdefs), and the
 * class alone decides the exit code, HTTP status or gRPC status (see `exitCodeFor`).
 * Callers branch on `err.code`, never on `err.message`.
 */

export type ErrorClass =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'unauthenticated'
  | 'permission_denied'
  | 'unavailable'
  | 'data_loss'
  | 'resource_exhausted'
  | 'unimplemented'
  | 'canceled'
  | 'internal'

/** code → class. Adding a code here is the only way to create one. */
export const CODES = {
  // generic
  ERR_INVALID_ARGUMENT: 'invalid_argument',
  ERR_USAGE: 'invalid_argument',
  ERR_NOT_FOUND: 'not_found',
  ERR_CANCELED: 'canceled',
  ERR_INTERNAL: 'internal',
  ERR_TOO_LARGE: 'resource_exhausted',
  ERR_CONFIG_INVALID: 'invalid_argument',
  ERR_PLUGIN_DUPLICATE: 'already_exists',
  ERR_PLUGIN_NOT_FOUND: 'not_found',
  // lib/oci: references, formats
  ERR_OCI_REFERENCE_INVALID: 'invalid_argument',
  ERR_OCI_TRANSPORT_UNKNOWN: 'invalid_argument',
  ERR_OCI_DIGEST_INVALID: 'invalid_argument',
  ERR_OCI_DIGEST_MISMATCH: 'data_loss',
  ERR_OCI_SIZE_MISMATCH: 'data_loss',
  ERR_OCI_MANIFEST_TOO_LARGE: 'resource_exhausted',
  ERR_OCI_MANIFEST_INVALID: 'invalid_argument',
  ERR_OCI_MEDIA_TYPE_UNKNOWN: 'unimplemented',
  ERR_OCI_SCHEMA1_UNSUPPORTED: 'unimplemented',
  ERR_OCI_PLATFORM_INVALID: 'invalid_argument',
  ERR_OCI_PLATFORM_NOT_FOUND: 'not_found',
  ERR_OCI_OUT_OF_ORDER: 'failed_precondition',
  ERR_OCI_LAYER_INVALID: 'data_loss',
  // lib/oci: image layout
  ERR_OCI_LAYOUT_INVALID: 'failed_precondition',
  ERR_OCI_LAYOUT_NOT_FOUND: 'not_found',
  ERR_OCI_TAG_NOT_FOUND: 'not_found',
  ERR_OCI_TAG_AMBIGUOUS: 'failed_precondition',
  ERR_OCI_BLOB_NOT_FOUND: 'not_found',
  // lib/oci: registry
  ERR_REGISTRY_UNREACHABLE: 'unavailable',
  ERR_REGISTRY_UNAUTHORIZED: 'unauthenticated',
  ERR_REGISTRY_DENIED: 'permission_denied',
  ERR_REGISTRY_NOT_FOUND: 'not_found',
  ERR_REGISTRY_RATE_LIMITED: 'resource_exhausted',
  ERR_REGISTRY_PROTOCOL: 'failed_precondition',
  ERR_REGISTRY_SERVER: 'unavailable',
  ERR_REGISTRY_TLS: 'unavailable',
  ERR_AUTH_FILE_INVALID: 'invalid_argument',
  ERR_REGISTRIES_CONF_INVALID: 'invalid_argument',
  ERR_REGISTRY_BLOCKED: 'permission_denied',
  ERR_AUTH_HELPER_FAILED: 'unauthenticated',
  // lib/crypt: layer encryption
  ERR_CRYPT_DECRYPT_FAILED: 'data_loss',
  ERR_CRYPT_NO_KEY: 'failed_precondition',
  ERR_CRYPT_KEY_INVALID: 'invalid_argument',
  ERR_CRYPT_OPTIONS_INVALID: 'invalid_argument',
  ERR_CRYPT_UNSUPPORTED: 'unimplemented',
  ERR_CRYPT_WORKER_FAILED: 'internal',
  ERR_CRYPT_RECIPIENT_INVALID: 'invalid_argument',
  // lib/crypt/keyprovider: ocicrypt keyprovider protocol
  ERR_CRYPT_PROVIDER_TIMEOUT: 'unavailable',
  ERR_CRYPT_PROVIDER_FAILED: 'unavailable',
  ERR_CRYPT_PROVIDER_PROTOCOL: 'failed_precondition',
  ERR_CRYPT_PROVIDER_REQUEST_INVALID: 'invalid_argument',
  // lib/sign: signatures, trust policy, signature storage
  ERR_SIGN_POLICY_INVALID: 'invalid_argument',
  ERR_SIGN_POLICY_DENIED: 'permission_denied',
  ERR_SIGN_SIGNATURE_INVALID: 'permission_denied',
  ERR_SIGN_KEY_INVALID: 'invalid_argument',
  ERR_SIGN_KEY_PASSWORD: 'unauthenticated',
  ERR_SIGN_UNSUPPORTED: 'unimplemented',
  ERR_SIGN_REGISTRIES_D_INVALID: 'invalid_argument',
  ERR_SIGN_STORAGE: 'unavailable',
  ERR_SIGN_TOO_MANY: 'resource_exhausted',
  // lib/attest: attesters and verifiers
  ERR_ATTEST_EVIDENCE_INVALID: 'invalid_argument',
  ERR_ATTEST_VERIFICATION_FAILED: 'permission_denied',
  ERR_ATTEST_REPORT_DATA_MISMATCH: 'permission_denied',
  ERR_ATTEST_TEE_UNSUPPORTED: 'unimplemented',
  ERR_ATTEST_NO_TEE: 'failed_precondition',
  ERR_ATTEST_SAMPLE_DISABLED: 'permission_denied',
  ERR_ATTEST_DEVICE_FAILED: 'unavailable',
  ERR_ATTEST_REFERENCE_VALUES_INVALID: 'invalid_argument',
  // lib/kbs
  ERR_KBS_RESOURCE_URI_INVALID: 'invalid_argument',
  // lib/image/service
  ERR_IMAGE_SERVICE_UNAVAILABLE: 'unavailable',
  ERR_IMAGE_NOT_FOUND: 'not_found',
  ERR_KBS_STORE_UNAVAILABLE: 'unavailable',
  ERR_KBS_STORE_KEY_INVALID: 'invalid_argument',
  ERR_KBS_STORE_CORRUPT: 'data_loss',
  ERR_KBS_POLICY_INVALID: 'invalid_argument',
  ERR_KBS_CONFIG_INVALID: 'invalid_argument',
  ERR_KBS_PROTOCOL: 'failed_precondition',
  ERR_KBS_UNAUTHORIZED: 'unauthenticated',
  ERR_KBS_DENIED: 'permission_denied',
  ERR_KBS_RESOURCE_NOT_FOUND: 'not_found',
  ERR_KBS_UNREACHABLE: 'unavailable',
  ERR_KBS_ADMIN_KEY_INVALID: 'invalid_argument',
  // plugins/kbs-store: fs, sealed, postgres
  ERR_KBS_STORE_MASTER_KEY_INVALID: 'invalid_argument',
  // lib/storage: gocryptfs-compatible encrypted volumes
  ERR_STORAGE_NOT_A_VOLUME: 'not_found',
  ERR_STORAGE_VOLUME_EXISTS: 'already_exists',
  ERR_STORAGE_CONFIG_INVALID: 'invalid_argument',
  ERR_STORAGE_FEATURE_UNSUPPORTED: 'unimplemented',
  ERR_STORAGE_WRONG_PASSPHRASE: 'unauthenticated',
  ERR_STORAGE_PASSPHRASE_EMPTY: 'invalid_argument',
  ERR_STORAGE_CORRUPT: 'data_loss',
  ERR_STORAGE_NAME_INVALID: 'invalid_argument',
  ERR_STORAGE_NAME_TOO_LONG: 'invalid_argument',
  ERR_STORAGE_FSCK_FAILED: 'data_loss',
  // lib/image: safe layer unpacker, layer store, rootfs
  ERR_IMAGE_UNSAFE_PATH: 'invalid_argument',
  ERR_IMAGE_TAR_INVALID: 'invalid_argument',
  ERR_IMAGE_HARDLINK_INVALID: 'invalid_argument',
  ERR_IMAGE_LAYER_TOO_LARGE: 'resource_exhausted',
  ERR_IMAGE_DIFF_ID_MISMATCH: 'data_loss',
  ERR_IMAGE_LAYER_NOT_FOUND: 'not_found',
  ERR_IMAGE_STORE_CORRUPT: 'data_loss',
  ERR_IMAGE_ROOTFS_FAILED: 'failed_precondition',
  ERR_IMAGE_ROOTFS_EXISTS: 'already_exists',
  ERR_IMAGE_WORKER_FAILED: 'internal',
  // lib/storage/fuse, lib/storage/mount: coffer mount / umount
  ERR_STORAGE_MOUNT_FAILED: 'failed_precondition',
  ERR_STORAGE_MOUNTPOINT_BUSY: 'already_exists',
  ERR_STORAGE_NOT_MOUNTED: 'not_found',
  ERR_STORAGE_UNMOUNT_FAILED: 'unavailable',
  // lib/csi: the CSI driver (coffer csi serve)
  ERR_CSI_ARGUMENT_MISSING: 'invalid_argument',
  ERR_CSI_ARGUMENT_INVALID: 'invalid_argument',
  ERR_CSI_CAPABILITY_UNSUPPORTED: 'invalid_argument',
  ERR_CSI_VOLUME_NOT_FOUND: 'not_found',
  ERR_CSI_VOLUME_CONFLICT: 'already_exists',
  ERR_CSI_NOT_STAGED: 'failed_precondition',
  ERR_CSI_CAPABILITY_EXCEEDED: 'failed_precondition',
  ERR_CSI_VOLUME_IN_USE: 'failed_precondition',
  ERR_CSI_ENDPOINT_INVALID: 'invalid_argument',
  ERR_CSI_MOUNT_FAILED: 'internal',
  ERR_CSI_KEY_NOT_FOUND: 'failed_precondition',
  ERR_CSI_KEY_DENIED: 'permission_denied',
  ERR_CSI_KEY_UNAVAILABLE: 'unavailable',
  ERR_CSI_STATE_CORRUPT: 'data_loss',
} as const satisfies Record<string, ErrorClass>

export type CofferErrorCode = keyof typeof CODES

export class CofferError extends Error {
  override readonly name = 'CofferError'
  /** What the user can do about this failure, when it is more specific than the code's hint. */
  readonly hint: string | undefined
  constructor(
    readonly code: CofferErrorCode,
    message: string,
    options?: { cause?: unknown; hint?: string },
  ) {
    super(message, options)
    this.hint = options?.hint
  }

  /** The coarse class of this error's code. */
  get errorClass(): ErrorClass {
    return CODES[this.code]
  }
}

export function isCofferError(err: unknown, code?: CofferErrorCode): err is CofferError {
  return err instanceof CofferError && (code === undefined || err.code === code)
}

/**
 * Process exit codes per class. 1 stays the catch-all for unexpected crashes;
 * usage errors get 2 as in most CLIs (commander uses 1 itself; we remap).
 */
const EXIT_CODES: Record<ErrorClass, number> = {
  invalid_argument: 2,
  not_found: 3,
  already_exists: 4,
  failed_precondition: 5,
  unauthenticated: 6,
  permission_denied: 7,
  unavailable: 8,
  data_loss: 9,
  resource_exhausted: 10,
  unimplemented: 11,
  canceled: 130,
  internal: 1,
}

export function exitCodeFor(err: unknown): number {
  return err instanceof CofferError ? EXIT_CODES[err.errorClass] : 1
}

/** Wraps a non-coffer error with context, keeping a CofferError as it is. */
export function wrapError(err: unknown, code: CofferErrorCode, message: string): CofferError {
  if (err instanceof CofferError) return err
  return new CofferError(code, message, { cause: err })
}
