import { resolve } from 'node:path'
import { openLayerStore } from '../../lib/image/layer-store/index.js'
import { connectImageService, pullEventOf, type ImageServiceClient } from '../../lib/image/service/client.js'
import { CofferError } from '../../lib/util/errors.js'
import { pullProgress } from '../pull-progress.js'
import type { CommandContext } from '../run.js'
import { guestPullSetup } from './pull.js'

export const DEFAULT_IMAGE_SERVICE_SOCKET = '/run/coffer/image-service.sock'

/** `coffer image-service serve --socket PATH`: until SIGINT/SIGTERM. */
export async function imageServiceServeCommand(
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const { startImageService } = await import('../../lib/image/service/server.js')
  const setup = await guestPullSetup(opts, ctx)
  try {
    const socket = resolve((opts.socket as string | undefined) ?? DEFAULT_IMAGE_SERVICE_SOCKET)
    const service = await startImageService({
      socket,
      store: await openLayerStore(setup.storeDir),
      workDir: resolve((opts.workDir as string | undefined) ?? setup.workDir),
      pull: setup.pull,
      log: (event) =>
        process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`),
    })
    ctx.emit({ listening: socket, store: setup.storeDir })
    process.stderr.write(`coffer image-service listening on ${socket} (store ${setup.storeDir})\n`)
    await new Promise<void>((done) => {
      if (ctx.signal.aborted) done()
      else ctx.signal.addEventListener('abort', () => done(), { once: true })
    })
    await service.close()
  } finally {
    await setup.close()
  }
}

/** Runs `f` with a client of the service socket (--socket), closing it afterwards. */
async function withClient<T>(
  opts: Record<string, unknown>,
  f: (c: ImageServiceClient) => Promise<T>,
): Promise<T> {
  const c = connectImageService(resolve((opts.socket as string | undefined) ?? DEFAULT_IMAGE_SERVICE_SOCKET))
  try {
    return await f(c)
  } finally {
    c.close()
  }
}

export async function imageServicePullCommand(
  image: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  await withClient(opts, async (c) => {
    const progress = await pullProgress(ctx)
    const r = await c
      .pullWithProgress(
        image,
        (m) => {
          const e = pullEventOf(m)
          if (e) progress.onEvent(e)
        },
        opts.platform as string | undefined,
      )
      .finally(progress.stop)
    ctx.emit({ result: r })
    ctx.say(
      `Pulled ${image}: ${r.image_ref}, rootfs ${r.rootfs} (${r.layers_unpacked} layers unpacked, ${r.layers_reused} reused)`,
    )
  })
}

export async function imageServiceStatusCommand(
  image: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  await withClient(opts, async (c) => {
    const img = await c.status(image)
    if (!img) throw new CofferError('ERR_IMAGE_NOT_FOUND', `${image} has not been pulled`)
    ctx.emit({ image: img })
    ctx.say(
      `${image}: ${img.id}, ${img.diff_ids.length} layers, ${img.size} bytes; tags ${img.repo_tags.join(', ')}`,
    )
  })
}

export async function imageServiceListCommand(
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  if (typeof opts.store === 'string') {
    const { listStoredImages } = await import('../../lib/image/stored-images.js')
    const images = await listStoredImages(await openLayerStore(resolve(opts.store)))
    ctx.emit({ images })
    for (const i of images) ctx.say(`${i.manifestDigest}  ${(i.references ?? []).join(', ')}`)
    return
  }
  await withClient(opts, async (c) => {
    const images = await c.list()
    ctx.emit({ images })
    for (const i of images) ctx.say(`${i.id}  ${i.repo_tags.join(', ')}`)
  })
}

export async function imageServiceRemoveCommand(
  image: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  if (typeof opts.store === 'string') {
    const { removeStoredImage } = await import('../../lib/image/stored-images.js')
    const dropped = await removeStoredImage(await openLayerStore(resolve(opts.store)), image)
    ctx.emit({ removed: image, records: dropped })
    ctx.say(
      dropped.length
        ? `Removed ${image} (${dropped.join(', ')}); \`coffer image-service gc --store ${opts.store}\` frees its layers`
        : `Removed the name ${image}; its image is still recorded under other names`,
    )
    return
  }
  await withClient(opts, async (c) => {
    await c.remove(image)
    ctx.emit({ removed: image })
    ctx.say(`Removed ${image}`)
  })
}

/** `coffer image-service gc --store DIR`: layers no image uses, once no pull is using the store. */
export async function imageServiceGcCommand(
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  if (typeof opts.store !== 'string') throw new CofferError('ERR_USAGE', 'give --store DIR')
  const removed = await (
    await openLayerStore(resolve(opts.store))
  ).gc({
    signal: ctx.signal,
    onWait: (n) => {
      ctx.emit({ waiting: n })
      ctx.say(`Waiting for ${n} pull${n === 1 ? '' : 's'} (or gc) using the store to finish…`)
    },
  })
  ctx.emit({ removed })
  ctx.say(`Removed ${removed.length} unused layers`)
}
