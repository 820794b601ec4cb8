/** Client of the image service socket, for `coffer image-service pull | status | list | remove`. */
import * as grpc from '@grpc/grpc-js'
import { fromGrpcError } from '../../util/grpc-errors.js'
import { imageServiceDefinition, type ImageMessage } from './proto.js'

export interface ImageServiceClient {
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
