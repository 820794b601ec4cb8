/** coffer's error classes as the gRPC status codes CSI's error scheme expects (spec.md "Error Scheme"). */
import * as grpc from '@grpc/grpc-js'
import { CofferError, type ErrorClass } from '../util/errors.js'

const STATUS_FOR_CLASS: Record<ErrorClass, grpc.status> = {
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

/** A CofferError → its class's status with `"<message> [<code>]"`; anything else INTERNAL. */
export function toGrpcStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof CofferError)
    return { code: STATUS_FOR_CLASS[err.errorClass], details: `${err.message} [${err.code}]` }
  const errno = (err as NodeJS.ErrnoException | undefined)?.code
  return { code: grpc.status.INTERNAL, details: `internal error${errno ? ` (${errno})` : ''} [ERR_INTERNAL]` }
}
