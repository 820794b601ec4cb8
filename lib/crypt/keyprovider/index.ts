/** The keyprovider area's public surface (STYLE §11): re-exports only. */
export {
  KEYPROVIDER_CONFIG_ENV,
  loadKeyProviderConfig,
  parseKeyProviderConfig,
  type KeyProviderConfig,
  type KeyProviderEntry,
  type KeyProviderTransportConfig,
} from './config.js'
export { callCmdProvider, type ProviderCallOptions, type ProviderReply } from './cmd-client.js'
export { callGrpcProvider } from './grpc-client.js'
export { KEYPROVIDER_PROTO } from './grpc.js'
export { DEFAULT_KID, KEK_ALG, KEK_ENC, unwrapWithKeks, wrapWithKeks, type Keyring } from './kek-wrap.js'
export * from './limits.js'
export {
  encodeProviderRequest,
  encodeProviderResponse,
  OP_KEYUNWRAP,
  OP_KEYWRAP,
  parseProviderRequest,
  parseProviderResponse,
  type ProviderOp,
  type ProviderRequest,
} from './protocol.js'
export {
  createKekKeyProvider,
  DEFAULT_PROVIDER_NAME,
  handleKeyProviderRequest,
  loadKeyring,
  serveKeyProviderCmd,
  type KeyProviderHandler,
  type KeyProviderServer,
} from './server.js'
export {
  DEFAULT_GRPC_HOST,
  grpcListenAddress,
  startKeyProviderGrpcServer,
  type RunningGrpcServer,
} from './grpc-server.js'
