import { CofferError } from '../util/errors.js'
import { ERROR_TYPE_PREFIX } from './protocol.js'

/**
 * The error variants a KBS answers with (trustee `kbs/src/error.rs`). Trustee sends 401 for all of
 * them except a bad path or unknown plugin (404); its guest redoes the handshake on 401 and reports
 * ResourceNotFound on 404, so coffer also answers a missing resource with 404 (the protocol doc's
 * promise) and keeps 401 everywhere a peer expects it. Oversized bodies are 413, store outages 503.
 */
export type KbsErrorType =
  | 'AttestationError'
  | 'PolicyDeny'
  | 'TokenNotFound'
  | 'TokenVerifierError'
  | 'InvalidRequestPath'
  | 'PluginNotFound'
  | 'ResourceNotFound'
  | 'AdminAuthAccess'
  | 'JweError'
  | 'SerdeError'
  | 'ParsePolicyError'
  | 'RvpsError'
  | 'PayloadTooLarge'
  | 'StorageUnavailable'
  | 'InternalError'

const STATUS: Record<KbsErrorType, number> = {
  AttestationError: 401,
  PolicyDeny: 401,
  TokenNotFound: 401,
  TokenVerifierError: 401,
  InvalidRequestPath: 404,
  PluginNotFound: 404,
  ResourceNotFound: 404,
  AdminAuthAccess: 401,
  JweError: 401,
  SerdeError: 401,
  ParsePolicyError: 401,
  RvpsError: 401,
  PayloadTooLarge: 413,
  StorageUnavailable: 503,
  InternalError: 500,
}

/** An error answered to a KBS peer. `detail` is sent to the client: never put secrets in it. */
export class KbsError extends Error {
  override readonly name = 'KbsError'
  constructor(
    readonly type: KbsErrorType,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${type}: ${detail}`, options)
  }
  get status(): number {
    return STATUS[this.type]
  }
  body(): { type: string; detail: string } {
    return { type: `${ERROR_TYPE_PREFIX}${this.type}`, detail: this.detail }
  }
}

/**
 * Maps anything thrown while serving to a KbsError. `fallback` names what failed (the variant a
 * coded error of class invalid_argument/permission_denied becomes), so a verifier's rejection is
 * an AttestationError while a malformed policy is a ParsePolicyError.
 */
export function toKbsError(err: unknown, fallback: KbsErrorType): KbsError {
  if (err instanceof KbsError) return err
  if (err instanceof CofferError) {
    if (err.errorClass === 'unavailable' && err.code.startsWith('ERR_KBS_STORE'))
      return new KbsError('StorageUnavailable', 'the resource store is unavailable', { cause: err })
    if (err.errorClass === 'resource_exhausted')
      return new KbsError('PayloadTooLarge', err.message, { cause: err })
    if (err.errorClass === 'internal') return new KbsError('InternalError', 'internal error', { cause: err })
    return new KbsError(fallback, err.message, { cause: err })
  }
  return new KbsError('InternalError', 'internal error', { cause: err })
}
