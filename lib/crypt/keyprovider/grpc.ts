/**
 * The keyprovider gRPC service (spec §2.3; ocicrypt `utils/keyprovider/keyprovider.proto`), shared
 * by the client and the server. The proto is small enough to keep here as data: `KEYPROVIDER_PROTO`
 * is its text, `KEYPROVIDER_PROTO_JSON` the same definition in protobufjs' JSON form, which
 * proto-loader loads without a file on disk (so `dist/` needs no copied asset). A unit test checks
 * that the two agree.
 *
 * Message names follow ocicrypt's lowercase spelling; CoCo's copy capitalises them, which is
 * wire-identical (method paths and field numbers are what count).
 */
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { MAX_PROVIDER_MESSAGE_BYTES } from './limits.js'

export const KEYPROVIDER_PROTO = `syntax = "proto3";

package keyprovider;

message keyProviderKeyWrapProtocolInput {
  bytes KeyProviderKeyWrapProtocolInput = 1;
}

message keyProviderKeyWrapProtocolOutput {
  bytes KeyProviderKeyWrapProtocolOutput = 1;
}

service KeyProviderService {
  rpc WrapKey(keyProviderKeyWrapProtocolInput) returns (keyProviderKeyWrapProtocolOutput) {};
  rpc UnWrapKey(keyProviderKeyWrapProtocolInput) returns (keyProviderKeyWrapProtocolOutput) {};
}
`

export const KEYPROVIDER_PROTO_JSON: Parameters<typeof protoLoader.fromJSON>[0] = {
  nested: {
    keyprovider: {
      nested: {
        keyProviderKeyWrapProtocolInput: {
          fields: { KeyProviderKeyWrapProtocolInput: { type: 'bytes', id: 1 } },
        },
        keyProviderKeyWrapProtocolOutput: {
          fields: { KeyProviderKeyWrapProtocolOutput: { type: 'bytes', id: 1 } },
        },
        KeyProviderService: {
          methods: {
            WrapKey: {
              requestType: 'keyProviderKeyWrapProtocolInput',
              responseType: 'keyProviderKeyWrapProtocolOutput',
              comment: '',
            },
            UnWrapKey: {
              requestType: 'keyProviderKeyWrapProtocolInput',
              responseType: 'keyProviderKeyWrapProtocolOutput',
              comment: '',
            },
          },
        },
      },
    },
  },
}

/** proto-loader options: keep the field names as written, bytes as Buffers. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = { keepCase: true, defaults: true }

export interface WrapProtocolInput {
  KeyProviderKeyWrapProtocolInput: Buffer
}
export interface WrapProtocolOutput {
  KeyProviderKeyWrapProtocolOutput: Buffer
}

/** The service definition, built once. */
export function keyProviderService(): grpc.ServiceDefinition {
  cached ??= (() => {
    const pkg = grpc.loadPackageDefinition(protoLoader.fromJSON(KEYPROVIDER_PROTO_JSON, PROTO_LOADER_OPTIONS))
    const ns = pkg.keyprovider as grpc.GrpcObject
    return (ns.KeyProviderService as grpc.ServiceClientConstructor).service
  })()
  return cached
}
let cached: grpc.ServiceDefinition | undefined

/**
 * Channel options on both sides: a message carries at most one protocol JSON, plus the few bytes
 * of protobuf framing around it.
 */
export const GRPC_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': MAX_PROVIDER_MESSAGE_BYTES + 64,
  'grpc.max_send_message_length': MAX_PROVIDER_MESSAGE_BYTES + 64,
}

/** coffer's error classes as gRPC status codes (shared with every coffer gRPC service). */
export { GRPC_STATUS_FOR_CLASS } from '../../util/grpc-errors.js'

/**
 * Statuses that say the provider could not be asked (or did not answer), as opposed to having
 * answered "no". The client reports these as transport failures, never as a wrong key. UNKNOWN and
 * INTERNAL are answers: a Go provider's handler error arrives as UNKNOWN.
 */
export const GRPC_TRANSPORT_STATUSES: ReadonlySet<grpc.status> = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.CANCELLED,
  grpc.status.UNIMPLEMENTED,
  grpc.status.RESOURCE_EXHAUSTED,
])
