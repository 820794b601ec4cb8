import * as grpc from '@grpc/grpc-js'
import { CODES, CofferError, type CofferErrorCode, type ErrorClass } from './errors.js'

/** coffer's error classes as gRPC status codes (STYLE §5's table). */
export const GRPC_STATUS_FOR_CLASS: Record<ErrorClass, grpc.status> = {
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  already_exists: grpc.status.ALREADY_EXISTS,
  failed_precondition: grpc.status.FAILED_PRECONDITION,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  permission_denied: grpc.status.PERMISSION_DENIED,
  unavailable: grpc.status.UNAVAILABLE,
  data_loss: grpc.status.DATA_LOSS,
  resource_exhausted: grpc.status.RESOURCE_EXHAUSTED,
  unimplemented: grpc.status.UNIMPLEMENTED,
  canceled: grpc.status.CANCELLED,
  internal: grpc.status.INTERNAL,
}

/** A thrown error as a gRPC status: the class decides the code; details are `"<message> [<code>]"`. */
export function toGrpcError(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof CofferError)
    return { code: GRPC_STATUS_FOR_CLASS[err.errorClass], details: `${err.message} [${err.code}]` }
  return { code: grpc.status.INTERNAL, details: 'internal error [ERR_INTERNAL]' }
}

/** The coffer error code carried in a gRPC status's details, if any (client side). */
export function fromGrpcError(err: grpc.ServiceError, what: string): CofferError {
  const m = /\[(ERR_[A-Z0-9_]+)\]$/.exec(err.details ?? '')
  const named = m?.[1]
  const code: CofferErrorCode =
    named && named in CODES
      ? (named as CofferErrorCode)
      : err.code === grpc.status.UNAVAILABLE
        ? 'ERR_IMAGE_SERVICE_UNAVAILABLE'
        : 'ERR_INTERNAL'
  return new CofferError(code, `${what}: ${(err.details || err.message).replace(/ \[ERR_[A-Z0-9_]+\]$/, '')}`)
}
