/**
 * Size limits for everything coffer parses from untrusted sources, in one place
 * (like containers/image `internal/iolimits`). Past a limit a reader throws ERR_*_TOO_LARGE.
 */
export const KiB = 1024
export const MiB = 1024 * KiB

/** Manifests and indexes; the distribution spec says clients SHOULD handle at least 4 MB. */
export const MAX_MANIFEST_BYTES = 4 * MiB
/** Image config blobs (containers/image uses 4 MiB too). */
export const MAX_CONFIG_BYTES = 4 * MiB
/** OCI layout `index.json`. */
export const MAX_LAYOUT_INDEX_BYTES = 4 * MiB
/** Registry error bodies, token responses and tag lists. */
export const MAX_REGISTRY_ERROR_BYTES = 64 * KiB
export const MAX_TOKEN_RESPONSE_BYTES = 1 * MiB
export const MAX_TAG_LIST_BYTES = 8 * MiB
/** auth.json, config.json, registries.conf. */
export const MAX_CREDENTIALS_FILE_BYTES = 1 * MiB
export const MAX_REGISTRIES_CONF_BYTES = 1 * MiB

/** Network timeouts (ms). A body read is bounded by progress, not by total time. */
export const CONNECT_TIMEOUT_MS = 30_000
export const HEADERS_TIMEOUT_MS = 60_000
export const BODY_IDLE_TIMEOUT_MS = 60_000

/** Layer cipher options (ocicrypt's private options are ~200 bytes; public ones ~100). */
export const MAX_CRYPT_OPTIONS_BYTES = 64 * KiB
/** One `org.opencontainers.image.enc.keys.*` annotation (all recipients' wrapped keys). */
export const MAX_KEYS_ANNOTATION_BYTES = 1 * MiB
/** One JWE as the jwe key wrapper gets it (an annotation element, base64-decoded); ~1 KiB per recipient. */
export const MAX_JWE_BYTES = 1 * MiB
/** A key password read from `file=<pwfile>`: ocicrypt reads at most 64 bytes from `fd=<n>`. */
export const MAX_KEY_PASSWORD_BYTES = 64
/** Recipients of one JWE that unwrapping will look at (each costs a key operation per offered key). */
export const MAX_JWE_RECIPIENTS = 256

/** TPM attestation (lib/attest/tpm). A TPMS_ATTEST quote is ~150 bytes with 24 PCRs selected. */
export const MAX_TPM_ATTEST_BYTES = 4 * KiB
/** A TPMT_SIGNATURE: 6 bytes of header plus an RSA-4096 signature or an ECDSA pair. */
export const MAX_TPM_SIGNATURE_BYTES = 1 * KiB
/** An AK's DER SubjectPublicKeyInfo (RSA-4096 is ~550 bytes). */
export const MAX_TPM_AK_PUBLIC_BYTES = 2 * KiB
/** stdout/stderr kept from one tpm2-tools run; the rest is dropped (the tools can be chatty). */
export const MAX_TPM_TOOL_OUTPUT_BYTES = 64 * KiB
/** One tpm2-tools run; a quote on a hardware TPM takes well under a second. */
export const TPM_TOOL_TIMEOUT_MS = 30_000
/** `gocryptfs.conf` (gocryptfs writes ~400 bytes). */
export const MAX_GOCRYPTFS_CONF_BYTES = 64 * KiB
/** scrypt work a `gocryptfs.conf` may ask for (128·N·r·p bytes); gocryptfs's default N=2^16, r=8 is 64 MiB. */
export const MAX_SCRYPT_MEMORY_BYTES = 1024 * MiB
/** A passphrase file (`coffer fs --passphrase-file`): only its first line is used, as gocryptfs -passfile. */
export const MAX_PASSPHRASE_FILE_BYTES = 64 * KiB

/**
 * Layer unpacking (lib/image/unpack): defaults for one layer's tar; callers may lower or raise them.
 * A single entry may be as large as a whole layer; 8 GiB covers real images (CUDA layers run ~4 GiB).
 */
export const GiB = 1024 * MiB
export const MAX_LAYER_ENTRY_BYTES = 8 * GiB
/** Sum of all regular-file sizes in one layer. */
export const MAX_LAYER_TOTAL_BYTES = 32 * GiB
/** Entries in one layer (a full Debian base layer has ~10k). */
export const MAX_LAYER_ENTRIES = 1_000_000
/** An entry's path or link target, in bytes (Linux PATH_MAX). */
export const MAX_LAYER_PATH_BYTES = 4096
/** A layer store's small JSON records (layer metadata, image records). */
export const MAX_LAYER_META_BYTES = 16 * MiB
