/**
 * Calls a gRPC provider (spec §2.3): `WrapKey` / `UnWrapKey` of `keyprovider.KeyProviderService`,
 * the protocol JSON in the single bytes field. Plaintext, as ocicrypt without `grpc-tls`; one
 * channel per call, closed after it, so a wrapper holds no connection between layers.
 */
import * as grpc from '@grpc/grpc-js'
import { CofferError } from '../../util/errors.js'
import { throwIfAborted } from '../../util/io.js'
import type { ProviderCallOptions, ProviderReply } from './cmd-client.js'
import {
  GRPC_CHANNEL_OPTIONS,
  GRPC_TRANSPORT_STATUSES,
  keyProviderService,
  type WrapProtocolInput,
  type WrapProtocolOutput,
} from './grpc.js'
import { OP_KEYWRAP, type ProviderOp } from './protocol.js'

type Unary = (
  req: WrapProtocolInput,
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: WrapProtocolOutput) => void,
) => grpc.ClientUnaryCall

/**
 * One call with a deadline of `timeoutMs`. A status that means "not reached" (UNAVAILABLE,
 * UNIMPLEMENTED, …) throws ERR_CRYPT_PROVIDER_FAILED; DEADLINE_EXCEEDED throws
 * ERR_CRYPT_PROVIDER_TIMEOUT; any other status is a refusal; an abort throws ERR_CANCELED.
 */
export function callGrpcProvider(
  address: string,
  op: ProviderOp,
  request: Uint8Array,
  o: ProviderCallOptions,
): Promise<ProviderReply> {
  throwIfAborted(o.signal)
  const Client = grpc.makeGenericClientConstructor(keyProviderService(), 'KeyProviderService')
  const client = new Client(address, grpc.credentials.createInsecure(), GRPC_CHANNEL_OPTIONS)
  const method = (op === OP_KEYWRAP ? client.WrapKey : client.UnWrapKey) as Unary
  return new Promise<ProviderReply>((resolve, reject) => {
    const onAbort = (): void => call.cancel()
    const call = method.call(
      client,
      { KeyProviderKeyWrapProtocolInput: Buffer.from(request) },
      new grpc.Metadata(),
      { deadline: Date.now() + o.timeoutMs },
      (err, res) => {
        o.signal?.removeEventListener('abort', onAbort)
        client.close()
        if (!err) {
          resolve({ ok: true, body: res?.KeyProviderKeyWrapProtocolOutput ?? Buffer.alloc(0) })
          return
        }
        if (o.signal?.aborted) {
          reject(new CofferError('ERR_CANCELED', 'operation canceled', { cause: o.signal.reason }))
          return
        }
        const what = `key provider "${o.provider}" at ${address}`
        if (err.code === grpc.status.DEADLINE_EXCEEDED) {
          reject(
            new CofferError('ERR_CRYPT_PROVIDER_TIMEOUT', `${what} did not answer within ${o.timeoutMs} ms`),
          )
          return
        }
        const status = grpc.status[err.code] ?? String(err.code)
        if (GRPC_TRANSPORT_STATUSES.has(err.code)) {
          reject(
            new CofferError('ERR_CRYPT_PROVIDER_FAILED', `${what}: ${status}: ${err.details}`, {
              cause: err,
            }),
          )
          return
        }
        resolve({ ok: false, detail: `${status}: ${err.details}` })
      },
    )
    o.signal?.addEventListener('abort', onAbort, { once: true })
  })
}
