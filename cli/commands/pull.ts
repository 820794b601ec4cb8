import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import type { DecryptOptions } from '../../lib/crypt/decrypt-step.js'
import { loadImageServiceConfig, type ImageServiceConfig } from '../../lib/image/config.js'
import { openLayerStore } from '../../lib/image/layer-store/index.js'
import {
  defaultLayerConcurrency,
  pullImage,
  type PullOptions,
  type PullResult,
} from '../../lib/image/pull.js'
import { loadGuestRegistriesD, withRegistryFiles } from '../../lib/image/registry-files.js'
import { locationReader, trustMaterial } from '../../lib/image/trust-material.js'
import type { KbsClient } from '../../lib/kbs/client.js'
import { parseImageName } from '../../lib/oci/image-name.js'
import { parsePlatform } from '../../lib/oci/platform.js'
import { CofferError } from '../../lib/util/errors.js'
import { attestedKbsClient } from '../kbs-client-flags.js'
import { intFlag, registryAccess } from '../flags.js'
import { pullProgress } from '../pull-progress.js'
import type { CommandContext } from '../run.js'

/**
 * `coffer pull IMAGE --rootfs DIR`: the guest's one-shot pull (lib/image/pull.ts). Local keys and
 * a local policy need no KBS; with `--kbs-url` (or a config file's [kbs]) the guest attests once
 * and fetches kbs:/// policies, keys and layer KEKs through that one session.
 */
export async function pullCommand(
  image: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const name = parseImageName(image)
  const setup = await guestPullSetup(opts, ctx)
  try {
    const rootfsDir = resolve(opts.rootfs as string)
    const started = performance.now()
    const progress = await pullProgress(ctx)
    let result: PullResult
    try {
      result = await pullImage(name, {
        ...setup.pull,
        store: await openLayerStore(setup.storeDir),
        rootfsDir,
        ...(opts.platform ? { platform: parsePlatform(opts.platform as string) } : {}),
        signal: ctx.signal,
        onEvent: progress.onEvent,
      })
    } finally {
      progress.stop()
    }
    const seconds = (performance.now() - started) / 1000
    ctx.emit({
      result: {
        image,
        manifestDigest: result.manifestDigest,
        imageDigest: result.imageDigest,
        layersUnpacked: result.layersUnpacked,
        layersReused: result.layersReused,
        rootfs: result.rootfs?.path,
        rootfsKind: result.rootfs?.kind,
        seconds,
      },
    })
    ctx.say(
      `Pulled ${image} (${result.imageDigest}) into ${result.rootfs?.path}: ${result.layersUnpacked} layers unpacked, ${result.layersReused} reused, ${result.rootfs?.kind} rootfs, ${seconds.toFixed(1)} s`,
    )
  } finally {
    await setup.close()
  }
}

export interface GuestPullSetup {
  /** Everything a pull needs but the store, the rootfs and the image. */
  pull: Omit<PullOptions, 'store' | 'rootfsDir' | 'signal' | 'onEvent' | 'platform'>
  storeDir: string
  workDir: string
  close(): Promise<void>
}

/**
 * The guest's pull set-up from flags and the optional config file (flags win): one KBS session
 * (attested once) for the policy, its keys and layer KEKs; the policy itself; decryption keys;
 * registry access; limits. Shared by `coffer pull` and `coffer image-service serve`.
 */
export async function guestPullSetup(
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<GuestPullSetup> {
  const config: ImageServiceConfig | undefined =
    typeof opts.config === 'string' ? await loadImageServiceConfig(opts.config) : undefined
  const kbsUrl = (opts.kbsUrl as string | undefined) ?? config?.kbs?.url
  const closers: (() => Promise<void>)[] = []
  const close = async (): Promise<void> => {
    for (const c of closers.reverse()) await c()
  }
  try {
    let kbs: KbsClient | undefined
    if (kbsUrl) {
      const client = await attestedKbsClient(opts, {
        url: kbsUrl,
        ...(config?.kbs?.attester ? { attester: config.kbs.attester } : {}),
        ...(config?.kbs?.attester_settings ? { settings: config.kbs.attester_settings } : {}),
        ...(config?.kbs ? { tlsVerify: config.kbs.tls_verify } : {}),
      })
      kbs = client
      closers.push(() => client.close())
    }
    const policyLocation = (opts.policy as string | undefined) ?? config?.image.policy
    const insecure =
      opts.insecurePolicy === true ||
      (policyLocation === undefined && config?.image.insecure_accept_anything === true)
    if (!policyLocation && !insecure)
      throw new CofferError(
        'ERR_USAGE',
        'give --policy FILE|kbs:///… (the signature policy checked before any layer is fetched), or --insecure-policy to accept any image',
      )
    const read = locationReader(kbs)
    let trust: PullOptions['trust'] = 'insecure-accept-anything'
    if (!insecure) {
      const material = trustMaterial(policyLocation!, kbs)
      const registriesD = (opts['registries.d'] as string | undefined) ?? config?.image.registries_d
      trust = {
        policy: await material.policy(ctx),
        resolveKey: material.resolveKey,
        registriesD: await loadGuestRegistriesD(registriesD, read, ctx),
      }
    }
    const decrypt = await decryptOptions(opts, kbs)
    const storeDirectory = storeDir(opts, config)
    return {
      pull: {
        access: await withRegistryFiles(
          await registryAccess(opts, ''),
          {
            ...(opts.authfile === undefined && opts.creds === undefined && config?.image.auth
              ? { auth: config.image.auth }
              : {}),
            ...(opts.registriesConf === undefined && config?.image.registries_conf
              ? { registriesConf: config.image.registries_conf }
              : {}),
          },
          read,
          ctx,
        ),
        rootfsMode: opts.rootfsMode === 'materialize' ? 'materialize' : 'auto',
        trust,
        ...(decrypt ? { decrypt } : {}),
        concurrency: intFlag(
          opts.concurrency ?? config?.image.max_concurrent_layers ?? defaultLayerConcurrency(),
          '--concurrency',
          1,
          32,
        ),
        ...(config
          ? {
              limits: {
                maxEntrySize: config.limits.max_layer_bytes,
                maxTotalSize: config.limits.max_layer_bytes,
                maxEntries: config.limits.max_entries_per_layer,
                maxImageBytes: config.limits.max_image_bytes,
              },
            }
          : {}),
      },
      storeDir: storeDirectory,
      workDir: config?.work_dir ?? join(storeDirectory, '..', 'image-service'),
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

/** Local keys (skopeo's --decryption-key), and the KBS for kbs:/// layer keys when one is configured. */
async function decryptOptions(
  opts: Record<string, unknown>,
  kbs: KbsClient | undefined,
): Promise<DecryptOptions | undefined> {
  const keys = (opts.decryptionKey as string[] | undefined) ?? []
  if (!keys.length && !kbs) return undefined
  const { decryptConfigFrom } = await import('../crypt-flags.js')
  const { allKeyWrappers } = await import('../../plugins/keywraps.js')
  const { createKbsKeyWrapper } = await import('../../plugins/keywrap/kbs/index.js')
  const wrappers = (await allKeyWrappers()).map((w) =>
    w.name === 'kbs' && kbs ? createKbsKeyWrapper((kid, io) => kbs.getResource(kid, io)) : w,
  )
  return { wrappers, config: await decryptConfigFrom(keys) }
}

/** --store, else the config's work_dir/store, else /var/lib/coffer/image (root) or ~/.local/share/coffer/image. */
function storeDir(opts: Record<string, unknown>, config: ImageServiceConfig | undefined): string {
  if (typeof opts.store === 'string') return resolve(opts.store)
  if (config?.work_dir) return join(config.work_dir, 'store')
  if (process.getuid?.() === 0) return '/var/lib/coffer/image'
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'coffer', 'image')
}
