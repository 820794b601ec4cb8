/** Client of the image service socket, for `coffer image-service pull | status | list | remove`. */
import * as grpc from '@grpc/grpc-js'
import { fromGrpcError } from '../../util/grpc-errors.js'
import type { PullEvent } from '../pull.js'
import { imageServiceDefinition, type ImageMessage } from './proto.js'

/** A PullEvent message as it arrives (proto.ts); uint64 fields may come as strings. */
export interface PullProgressEvent {
  type: 'verified' | 'layer-start' | 'layer-progress' | 'layer' | 'done'
  manifest_digest?: string
  scope?: string
  diff_id?: string
  digest?: string
  size?: string | number
  bytes?: string | number
  state?: string
}

export interface ImageServiceClient {
  /** PullImageProgress: the pull with its events; resolves with the result. */
  pullWithProgress(
    image: string,
    onEvent: (e: PullProgressEvent) => void,
    platform?: string,
  ): Promise<{ image_ref: string; rootfs: string; layers_unpacked: number; layers_reused: number }>
  pull(
    image: string,
    platform?: string,
  ): Promise<{ image_ref: string; rootfs: string; layers_unpacked: number; layers_reused: number }>
  status(image: string): Promise<ImageMessage | undefined>
  list(): Promise<ImageMessage[]>
  remove(image: string): Promise<void>
  close(): void
}

export function connectImageService(socket: string): ImageServiceClient {
  const Client = grpc.makeGenericClientConstructor(imageServiceDefinition(), 'ImageService')
  const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure())
  const call = <Res>(method: string, req: unknown): Promise<Res> =>
    new Promise((resolve, reject) =>
      (
        client as unknown as Record<
          string,
          (r: unknown, cb: (e: grpc.ServiceError | null, v: Res) => void) => void
        >
      )[method]!(req, (err, res) =>
        err ? reject(fromGrpcError(err, `image service ${method}`)) : resolve(res),
      ),
    )
  return {
    pullWithProgress: (image, onEvent, platform) =>
      new Promise((resolve, reject) => {
        const stream = (
          client as unknown as Record<
            string,
            (r: unknown) => grpc.ClientReadableStream<PullProgressEvent & { result?: unknown }>
          >
        )['PullImageProgress']!({ image: { image }, platform: platform ?? '' })
        let result: unknown
        stream.on('data', (e: PullProgressEvent & { result?: unknown }) => {
          if (e.type === 'done') result = e.result
          else onEvent(e)
        })
        stream.on('error', (err: grpc.ServiceError) =>
          reject(fromGrpcError(err, 'image service PullImageProgress')),
        )
        stream.on('end', () =>
          result ? resolve(result as never) : reject(new Error('the pull stream ended without a result')),
        )
      }),
    pull: (image, platform) => call('PullImage', { image: { image }, platform: platform ?? '' }),
    status: async (image) =>
      (await call<{ image?: ImageMessage }>('ImageStatus', { image: { image } })).image ?? undefined,
    list: async () => (await call<{ images: ImageMessage[] }>('ListImages', {})).images,
    remove: async (image) => {
      await call('RemoveImage', { image: { image } })
    },
    close: () => client.close(),
  }
}

/** A PullEvent message back as the pull's own event (undefined for `done` or an unknown type). */
export function pullEventOf(m: PullProgressEvent): PullEvent | undefined {
  const diffId = m.diff_id ?? ''
  const size = Number(m.size ?? 0)
  switch (m.type) {
    case 'verified':
      return { type: 'verified', manifestDigest: m.manifest_digest ?? '', scope: m.scope ?? '' }
    case 'layer-start':
      return { type: 'layer-start', diffId, digest: m.digest ?? '', size }
    case 'layer-progress':
      return { type: 'layer-progress', diffId, bytes: Number(m.bytes ?? 0), size }
    case 'layer':
      return { type: 'layer', diffId, size, state: m.state === 'reused' ? 'reused' : 'unpacked' }
    default:
      return undefined
  }
}
