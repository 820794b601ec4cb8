/**
 * `coffer csi serve`: the CSI Identity, Controller and Node services on one unix socket.
 *
 * State lives under `stateDir`: `volumes/` (persistent volumes, volume-store.ts), `node/` (what is
 * mounted where, node-state.ts) and `ephemeral/` (ciphertext of inline volumes while mounted).
 */
import { mkdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { controllerService } from './controller.js'
import type { DriverSettings } from './driver.js'
import { toGrpcStatus } from './grpc-status.js'
import { identityService } from './identity.js'
import { KeyedLock } from './keyed-lock.js'
import { NodeState } from './node-state.js'
import { nodeService } from './node.js'
import { csiServices } from './proto.js'
import type { VolumeFormatter, VolumeMounter } from './volume-mounter.js'
import { VolumeStore } from './volume-store.js'

/** CSI messages are small: a few maps of strings. */
const MAX_CSI_MESSAGE_BYTES = 1 << 20

export interface CsiServerOptions extends DriverSettings {
  /** `unix:///abs/path.sock` (the CSI_ENDPOINT form). */
  endpoint: string
  stateDir: string
  mounter: VolumeMounter
  formatter: VolumeFormatter
}

export interface RunningCsiServer {
  /** The socket path. */
  socket: string
  /** Stops serving (mounts stay: pods keep using them) and removes the socket. */
  close(graceMs?: number): Promise<void>
}

/** The socket path of a CSI endpoint; only unix sockets (spec: "CSI_ENDPOINT"). */
export function socketPathOf(endpoint: string): string {
  const m = /^unix:\/\/(\/[^\0]+)$/.exec(endpoint) ?? /^unix:(\/[^/][^\0]*)$/.exec(endpoint)
  if (!m)
    throw new CofferError(
      'ERR_CSI_ENDPOINT_INVALID',
      `endpoint must be unix:///ABSOLUTE/PATH.sock, not ${endpoint}`,
    )
  return m[1]!
}

type Handler<Req> = (req: Req, signal: AbortSignal) => Promise<object>

/** Adapts an async handler to grpc-js: errors become statuses, a cancelled call aborts its signal. */
function unary<Req>(fn: Handler<Req>): grpc.handleUnaryCall<Req, object> {
  return (call, callback) => {
    const ac = new AbortController()
    call.on('cancelled', () => ac.abort(new CofferError('ERR_CANCELED', 'call cancelled')))
    fn(call.request, ac.signal).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toGrpcStatus(err)),
    )
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each method has its own request type
function wrapAll(service: Record<string, Handler<any>>): grpc.UntypedServiceImplementation {
  return Object.fromEntries(Object.entries(service).map(([k, fn]) => [k, unary(fn)]))
}

export async function startCsiServer(opts: CsiServerOptions, o: Io = {}): Promise<RunningCsiServer> {
  const socket = socketPathOf(opts.endpoint)
  if (!opts.nodeId || Buffer.byteLength(opts.nodeId) > 256)
    throw new CofferError('ERR_CSI_ARGUMENT_INVALID', 'node ID must be 1..256 bytes')
  await mkdir(opts.stateDir, { recursive: true, mode: 0o700 })
  const volumes = await new VolumeStore(join(opts.stateDir, 'volumes'), opts.formatter).open()
  const node = await new NodeState(join(opts.stateDir, 'node')).open()
  const ephemeralDir = join(opts.stateDir, 'ephemeral')
  await mkdir(ephemeralDir, { recursive: true, mode: 0o700 })
  const locks = new KeyedLock()
  const settings: DriverSettings = opts

  const { Identity, Controller, Node } = csiServices()
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_CSI_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_CSI_MESSAGE_BYTES,
  })
  const ready = async (): Promise<boolean> =>
    (await stat(opts.stateDir).catch(() => undefined))?.isDirectory() === true
  server.addService(Identity.service, wrapAll(identityService(settings, ready)))
  server.addService(Controller.service, wrapAll(controllerService({ settings, volumes, node, locks })))
  server.addService(
    Node.service,
    wrapAll(nodeService({ settings, volumes, node, locks, mounter: opts.mounter, ephemeralDir })),
  )

  // A socket left by a previous run (kubelet restarts plugins) would make bind fail with EADDRINUSE.
  await mkdir(join(socket, '..'), { recursive: true })
  await rm(socket, { force: true })
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err
        ? reject(
            new CofferError('ERR_CSI_ENDPOINT_INVALID', `cannot listen on ${socket}: ${err.message}`, {
              cause: err,
            }),
          )
        : resolve(),
    ),
  )
  let closing: Promise<void> | undefined
  const close = (graceMs = 5_000): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      o.signal?.removeEventListener('abort', onAbort)
      const force = setTimeout(() => server.forceShutdown(), graceMs)
      server.tryShutdown(() => {
        clearTimeout(force)
        resolve()
      })
    }).then(() => rm(socket, { force: true })))
  const onAbort = (): void => void close()
  o.signal?.addEventListener('abort', onAbort, { once: true })
  return { socket, close }
}
