/**
 * A CSI client for tests: grpc-js with coffer's csi.proto, one promise per call, and the status
 * code of a failed call in `codeOf`.
 */
import * as grpc from '@grpc/grpc-js'
import { csiServices } from '../../lib/csi/proto.js'

export type Call = (req?: Record<string, unknown>) => Promise<Record<string, unknown>>

export interface CsiClient {
  identity: Record<string, Call>
  controller: Record<string, Call>
  node: Record<string, Call>
  close(): void
}

export function csiClient(socket: string): CsiClient {
  const { Identity, Controller, Node } = csiServices()
  const make = (Ctor: grpc.ServiceClientConstructor): [grpc.Client, Record<string, Call>] => {
    const client = new Ctor(`unix://${socket}`, grpc.credentials.createInsecure())
    const calls: Record<string, Call> = {}
    for (const method of Object.keys(Ctor.service)) {
      calls[method] = (req = {}) =>
        new Promise((resolve, reject) =>
          (client as unknown as Record<string, (r: unknown, cb: (e: unknown, v: unknown) => void) => void>)[
            method
          ]!(req, (err, value) => (err ? reject(err as Error) : resolve(value as Record<string, unknown>))),
        )
    }
    return [client, calls]
  }
  const [ic, identity] = make(Identity)
  const [cc, controller] = make(Controller)
  const [nc, node] = make(Node)
  return {
    identity,
    controller,
    node,
    close: () => {
      ic.close()
      cc.close()
      nc.close()
    },
  }
}

/** The gRPC status code a call failed with (undefined if it succeeded). */
export async function codeOf(p: Promise<unknown>): Promise<grpc.status | undefined> {
  try {
    await p
    return undefined
  } catch (err) {
    return (err as grpc.ServiceError).code
  }
}

export const MOUNT_RWO = {
  mount: { fs_type: '', mount_flags: [] },
  access_mode: { mode: 'SINGLE_NODE_WRITER' },
}
export const MOUNT_RWOP = {
  mount: { fs_type: '', mount_flags: [] },
  access_mode: { mode: 'SINGLE_NODE_SINGLE_WRITER' },
}
export const BLOCK_RWO = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }
export const MOUNT_RWX = { mount: {}, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }
export { grpc }
