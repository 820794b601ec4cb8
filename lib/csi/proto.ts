/**
 * The CSI v1 gRPC services from coffer's own `csi.proto` (beside this module in lib/ and, copied
 * by `npm run build`, in dist/). Shared by the driver and by the tests' client.
 */
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

/** Where csi.proto sits next to this module, in the source tree and in dist/ alike. */
export const CSI_PROTO_PATH = fileURLToPath(new URL('./csi.proto', import.meta.url))

/**
 * Field names as in the proto (snake_case), enums as their names, int64 as JS numbers (sizes stay
 * far below 2^53), unset fields present with their defaults, and which member of a oneof is set.
 */
export const CSI_PROTO_OPTIONS: protoLoader.Options = {
  keepCase: true,
  enums: String,
  longs: Number,
  defaults: true,
  oneofs: true,
}

export interface CsiServices {
  Identity: grpc.ServiceClientConstructor
  Controller: grpc.ServiceClientConstructor
  Node: grpc.ServiceClientConstructor
}

/** The three services of package `csi.v1`, loaded once. */
export function csiServices(): CsiServices {
  cached ??= (() => {
    const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(CSI_PROTO_PATH, CSI_PROTO_OPTIONS))
    const v1 = (pkg.csi as grpc.GrpcObject).v1 as grpc.GrpcObject
    return {
      Identity: v1.Identity as grpc.ServiceClientConstructor,
      Controller: v1.Controller as grpc.ServiceClientConstructor,
      Node: v1.Node as grpc.ServiceClientConstructor,
    }
  })()
  return cached
}
let cached: CsiServices | undefined
