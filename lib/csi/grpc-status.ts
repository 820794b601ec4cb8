/** coffer's error classes as the gRPC status codes CSI's error scheme expects (spec.md "Error Scheme"). */
import * as grpc from '@grpc/grpc-js'
import { CofferError } from '../util/errors.js'
import { GRPC_STATUS_FOR_CLASS } from '../util/grpc-errors.js'

/** A CofferError → its class's status with `"<message> [<code>]"`; anything else INTERNAL. */
export function toGrpcStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof CofferError)
    return { code: GRPC_STATUS_FOR_CLASS[err.errorClass], details: `${err.message} [${err.code}]` }
  const errno = (err as NodeJS.ErrnoException | undefined)?.code
  return { code: grpc.status.INTERNAL, details: `internal error${errno ? ` (${errno})` : ''} [ERR_INTERNAL]` }
}
