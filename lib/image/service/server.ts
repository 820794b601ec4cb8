/**
 * `coffer image-service serve`: the image service daemon on a unix socket. Every PullImage runs the
 * whole pipeline of lib/image/pull.ts — the signature policy is evaluated on every pull, cached
 * layers included — and keeps one rootfs per image under WORK/rootfs/<digest hex>.
 */
import { execFile } from 'node:child_process'
import { mkdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import * as grpc from '@grpc/grpc-js'
import { parseImageName, type ImageName } from '../../oci/image-name.js'
import { parsePlatform } from '../../oci/platform.js'
import { CofferError } from '../../util/errors.js'
import { toGrpcError } from '../../util/grpc-errors.js'
import type { LayerStore } from '../layer-store/index.js'
import { pullImage, type PullEvent, type PullOptions } from '../pull.js'
import { buildRootfs } from '../rootfs.js'
import { ImageRefs, type ImageRef } from './image-refs.js'
import { imageServiceDefinition, type ImageMessage } from './proto.js'

const execFileP = promisify(execFile)

export interface ImageServiceOptions {
  /** unix socket path. */
  socket: string
  store: LayerStore
  /** rootfs trees and refs.json live here. */
  workDir: string
  pull: Omit<PullOptions, 'store' | 'rootfsDir' | 'signal' | 'onEvent' | 'platform'>
  log?: (event: Record<string, unknown>) => void
}

export interface RunningImageService {
  readonly socket: string
  close(): Promise<void>
}

/** `host/repo:tag` (as the CRI sends it) or a coffer image name. */
export function serviceImageName(image: string): ImageName {
  if (!image) throw new CofferError('ERR_INVALID_ARGUMENT', 'image is required')
  return parseImageName(
    image.startsWith('docker://') || image.startsWith('oci:') ? image : `docker://${image}`,
  )
}

export async function startImageService(o: ImageServiceOptions): Promise<RunningImageService> {
  const refs = new ImageRefs(o.workDir)
  await mkdir(join(o.workDir, 'rootfs'), { recursive: true, mode: 0o700 })
  const server = new grpc.Server()
  const controller = new AbortController()
  const log = o.log ?? (() => {})
  const builds = new Map<string, Promise<void>>()

  const unary =
    <Req, Res>(name: string, f: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> =>
    (call, callback) => {
      f(call.request).then(
        (res) => callback(null, res),
        (err: unknown) => {
          log({
            rpc: name,
            error: err instanceof CofferError ? err.code : 'ERR_INTERNAL',
            message: (err as Error).message,
          })
          callback(toGrpcError(err))
        },
      )
    }

  const imageOf = async (ref: ImageRef, tags: string[]): Promise<ImageMessage> => {
    const record = await o.store.getImage(ref.imageDigest)
    let size = 0
    for (const d of record?.diffIds ?? []) size += (await o.store.get(d))?.meta.bytes ?? 0
    return {
      id: ref.imageDigest,
      repo_tags: tags,
      repo_digests: [ref.manifestDigest],
      size,
      diff_ids: record?.diffIds ?? [],
    }
  }

  const pull = async (
    req: { image?: { image?: string }; platform?: string },
    onEvent?: (e: PullEvent) => void,
  ) => {
    const image = req.image?.image ?? ''
    const name = serviceImageName(image)
    const result = await pullImage(name, {
      ...o.pull,
      store: o.store,
      signal: controller.signal,
      ...(req.platform ? { platform: parsePlatform(req.platform) } : {}),
      ...(onEvent ? { onEvent } : {}),
    })
    const rootfsDir = join(o.workDir, 'rootfs', result.imageDigest.replace(/^sha256:/, ''))
    const rootfs = join(rootfsDir, 'rootfs')
    // One build per image, however many pulls of it run at once.
    let building = builds.get(rootfsDir)
    if (!building) {
      building = (async () => {
        if (!(await exists(rootfs)))
          await buildRootfs(
            o.store,
            result.diffIds,
            rootfsDir,
            o.pull.rootfsMode ? { mode: o.pull.rootfsMode } : {},
          )
      })().finally(() => builds.delete(rootfsDir))
      builds.set(rootfsDir, building)
    }
    await building
    await refs.update((all) => {
      all[image] = {
        imageDigest: result.imageDigest,
        manifestDigest: result.manifestDigest,
        rootfs,
        pulledAt: new Date().toISOString(),
      }
    })
    log({
      rpc: 'PullImage',
      image,
      imageDigest: result.imageDigest,
      unpacked: result.layersUnpacked,
      reused: result.layersReused,
    })
    return {
      image_ref: result.imageDigest,
      rootfs,
      layers_unpacked: result.layersUnpacked,
      layers_reused: result.layersReused,
    }
  }

  server.addService(imageServiceDefinition(), {
    PullImage: unary('PullImage', (req: { image?: { image?: string }; platform?: string }) => pull(req)),
    PullImageProgress: (
      call: grpc.ServerWritableStream<{ image?: { image?: string }; platform?: string }, unknown>,
    ) => {
      pull(call.request, (e) => call.write(pullEventMessage(e))).then(
        (result) => {
          call.write({ type: 'done', result })
          call.end()
        },
        (err: unknown) => {
          log({
            rpc: 'PullImageProgress',
            error: err instanceof CofferError ? err.code : 'ERR_INTERNAL',
            message: (err as Error).message,
          })
          call.emit('error', toGrpcError(err))
        },
      )
    },
    ImageStatus: unary('ImageStatus', async (req: { image?: { image?: string } }) => {
      const image = req.image?.image ?? ''
      const all = await refs.all()
      const ref = all[image] ?? Object.values(all).find((r) => r.imageDigest === image)
      // CRI: an unknown image is an empty answer, not an error.
      if (!ref) return {}
      const tags = Object.entries(all)
        .filter(([, r]) => r.imageDigest === ref.imageDigest)
        .map(([t]) => t)
      return { image: await imageOf(ref, tags) }
    }),
    ListImages: unary('ListImages', async () => {
      const all = await refs.all()
      const byDigest = new Map<string, { ref: ImageRef; tags: string[] }>()
      for (const [tag, ref] of Object.entries(all)) {
        const e = byDigest.get(ref.imageDigest) ?? { ref, tags: [] }
        e.tags.push(tag)
        byDigest.set(ref.imageDigest, e)
      }
      return { images: await Promise.all([...byDigest.values()].map((e) => imageOf(e.ref, e.tags.sort()))) }
    }),
    RemoveImage: unary('RemoveImage', async (req: { image?: { image?: string } }) => {
      const image = req.image?.image ?? ''
      let removed: ImageRef | undefined
      let stillUsed = false
      await refs.update((all) => {
        removed = all[image]
        delete all[image]
        stillUsed =
          removed !== undefined && Object.values(all).some((r) => r.imageDigest === removed!.imageDigest)
      })
      // CRI: removing an image that is not there succeeds.
      if (removed && !stillUsed) {
        if (removed.rootfs) await releaseRootfs(removed.rootfs)
        await o.store.deleteImage(removed.imageDigest)
      }
      log({ rpc: 'RemoveImage', image, removed: removed !== undefined })
      return {}
    }),
  })

  await rm(o.socket, { force: true })
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${o.socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err
        ? reject(
            new CofferError('ERR_INVALID_ARGUMENT', `cannot listen on ${o.socket}: ${err.message}`, {
              cause: err,
            }),
          )
        : resolve(),
    ),
  )
  return {
    socket: o.socket,
    async close() {
      controller.abort(new CofferError('ERR_CANCELED', 'the image service is stopping'))
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()))
      await rm(o.socket, { force: true })
    },
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** Unmounts an overlay rootfs if it is one, then removes its directory. */
async function releaseRootfs(rootfs: string): Promise<void> {
  await execFileP('umount', [rootfs]).catch(() => {})
  await rm(join(rootfs, '..'), { recursive: true, force: true })
}

/** A pull event as the PullEvent message of the gRPC stream (proto.ts). */
function pullEventMessage(e: PullEvent): Record<string, unknown> {
  switch (e.type) {
    case 'verified':
      return { type: e.type, manifest_digest: e.manifestDigest, scope: e.scope }
    case 'layer-start':
      return { type: e.type, diff_id: e.diffId, digest: e.digest, size: e.size }
    case 'layer-progress':
      return { type: e.type, diff_id: e.diffId, bytes: e.bytes, size: e.size }
    case 'layer':
      return { type: e.type, diff_id: e.diffId, size: e.size, state: e.state }
  }
}
