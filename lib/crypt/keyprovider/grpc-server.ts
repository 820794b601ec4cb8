/**
 * gRPC mode of `coffer keyprovider` (see server.ts): serves `keyprovider.KeyProviderService`,
 * plaintext, on 127.0.0.1 unless told otherwise. Errors become gRPC statuses by error class
 * (`GRPC_STATUS_FOR_CLASS`), with `"<message> [<code>]"` as details.
 */
import * as grpc from '@grpc/grpc-js'
import { CofferError } from '../../util/errors.js'
import { toGrpcError } from '../../util/grpc-errors.js'
import { throwIfAborted, type Io } from '../../util/io.js'
import {
  GRPC_CHANNEL_OPTIONS,
  keyProviderService,
  type WrapProtocolInput,
  type WrapProtocolOutput,
} from './grpc.js'
import { OP_KEYUNWRAP, OP_KEYWRAP, type ProviderOp } from './protocol.js'
import { handleKeyProviderRequest, type KeyProviderServer } from './server.js'

/** Where `--grpc PORT` listens: loopback, since the protocol is plaintext. */
export const DEFAULT_GRPC_HOST = '127.0.0.1'

export interface RunningGrpcServer {
  /** `host:port` actually bound (the port is chosen when `:0` was asked for). */
  address: string
  /** Stops accepting calls, lets running ones finish for up to `graceMs`, then cuts them. */
  close(graceMs?: number): Promise<void>
}

/** `PORT` → `127.0.0.1:PORT`; `HOST:PORT` and `[v6]:PORT` as given. */
export function grpcListenAddress(addr: string): string {
  return /^\d+$/.test(addr) ? `${DEFAULT_GRPC_HOST}:${addr}` : addr
}

/** gRPC mode: serves `keyprovider.KeyProviderService` on `address` until `close` or `o.signal`. */
export async function startKeyProviderGrpcServer(
  server: KeyProviderServer,
  address: string,
  o: Io = {},
): Promise<RunningGrpcServer> {
  throwIfAborted(o.signal)
  const grpcServer = new grpc.Server(GRPC_CHANNEL_OPTIONS)
  const handle =
    (op: ProviderOp): grpc.handleUnaryCall<WrapProtocolInput, WrapProtocolOutput> =>
    (call, callback) => {
      handleKeyProviderRequest(server, call.request.KeyProviderKeyWrapProtocolInput ?? Buffer.alloc(0), {
        expectedOp: op,
      }).then(
        (out) => callback(null, { KeyProviderKeyWrapProtocolOutput: out }),
        (err: unknown) => callback(toGrpcError(err)),
      )
    }
  grpcServer.addService(keyProviderService(), {
    WrapKey: handle(OP_KEYWRAP),
    UnWrapKey: handle(OP_KEYUNWRAP),
  })
  const listen = grpcListenAddress(address)
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err
        ? reject(
            new CofferError('ERR_INVALID_ARGUMENT', `cannot listen on ${listen}: ${err.message}`, {
              cause: err,
            }),
          )
        : resolve(p),
    ),
  )
  const host = listen.slice(0, listen.lastIndexOf(':'))
  let closing: Promise<void> | undefined
  const close = (graceMs = 5_000): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      o.signal?.removeEventListener('abort', onAbort)
      const force = setTimeout(() => grpcServer.forceShutdown(), graceMs)
      grpcServer.tryShutdown(() => {
        clearTimeout(force)
        resolve()
      })
    }))
  const onAbort = (): void => void close()
  o.signal?.addEventListener('abort', onAbort, { once: true })
  return { address: `${host}:${port}`, close }
}
