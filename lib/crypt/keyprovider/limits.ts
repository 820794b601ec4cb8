/**
 * Limits for the keyprovider protocol (STYLE §10). They live beside the protocol rather than in
 * lib/util/limits.ts because nothing else uses them.
 */
import { KiB, MiB } from '../../util/limits.js'

/** One protocol message (JSON) read from a provider or from a client, on stdin/stdout or gRPC. */
export const MAX_PROVIDER_MESSAGE_BYTES = 1 * MiB
/** What is kept of a cmd provider's stderr for the error message. */
export const MAX_PROVIDER_STDERR_BYTES = 4 * KiB
/** Default time one provider call may take (spawn to exit, or gRPC deadline). */
export const DEFAULT_PROVIDER_TIMEOUT_MS = 10_000
/** The `OCICRYPT_KEYPROVIDER_CONFIG` file. */
export const MAX_PROVIDER_CONFIG_BYTES = 1 * MiB
/** A KEK file: 32 raw bytes or their base64, with some room for whitespace. */
export const MAX_KEK_FILE_BYTES = 1 * KiB
/** Recipients (KEK ids) in one wrapped annotation the KEK provider will look at. */
export const MAX_KEK_RECIPIENTS = 64
