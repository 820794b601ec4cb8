/**
 * The guest's pull: a reference becomes a verified rootfs. Order is the security argument:
 *
 *   1. the top-level manifest is fetched and the signature policy evaluated on its exact bytes —
 *      before any layer is fetched, and on every pull (a cached image is never trusted because
 *      it is cached: image-rs returns early on a cache hit and skips this);
 *   2. the platform manifest and config are fetched by digest (so they are the signed ones);
 *   3. each layer is fetched (bounded concurrency, resumable), decrypted with its HMAC checked,
 *      decompressed, checked against its diff_id, and unpacked into the store's staging, committed
 *      only when every check passed; a layer already stored is reused — but an encrypted one only
 *      after its key was released again (the KBS may have revoked it);
 *   4. the image record is written and the rootfs built (overlay, or a materialized tree; when
 *      materializing is decided up front, each layer is applied as soon as it and all below it
 *      are stored, while the upper ones are still being pulled).
 */
import { availableParallelism } from 'node:os'
import type { DecryptOptions } from '../crypt/decrypt-step.js'
import { unwrapPrivateOptions } from '../crypt/key-wrapping.js'
import { isEncryptedMediaType } from '../crypt/media-types.js'
import type { Digest } from '../oci/digest.js'
import { formatImageName, type ImageName } from '../oci/image-name.js'
import { openImageSource } from '../oci/open-image.js'
import { hostPlatform, requireManifest, type PlatformSpec } from '../oci/platform.js'
import type { RegistryAccess } from '../oci/registry/access.js'
import { describeIssues, imageConfigSchema, type Descriptor } from '../oci/schemas.js'
import { evaluate } from '../sign/evaluate.js'
import { openSignedImage } from '../sign/image-signatures.js'
import type { KeyResolver } from '../sign/key-resolver.js'
import type { Policy } from '../sign/policy.js'
import type { RegistriesD } from '../sign/registries-d.js'
import { forEachLimit, inOrder } from '../util/concurrency.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { MAX_CONFIG_BYTES } from '../util/limits.js'
import type { LayerLimits, LayerStore, StoredLayer } from './layer-store/index.js'
import { layerChecks } from './layer-checks.js'
import { layerDecryption, layerReadError, sampleProgress } from './layer-stream.js'
import { layerStager } from './stage-worker/stage-runner.js'
import {
  assertRootfsFree,
  buildRootfs,
  materializeReasonUpFront,
  materializeRootfs,
  type Rootfs,
} from './rootfs.js'

/**
 * What a pull reports as it goes. A layer that is fetched gets `layer-start`, then `layer-progress`
 * (bytes of its blob fetched, sampled every 200 ms), then `layer`; a reused one only `layer`.
 */
export type PullEvent =
  | { type: 'verified'; manifestDigest: string; scope: string }
  | { type: 'layer-start'; diffId: string; digest: string; size: number }
  | { type: 'layer-progress'; diffId: string; bytes: number; size: number }
  | { type: 'layer'; diffId: string; size: number; state: 'reused' | 'unpacked' }

export interface PullOptions extends Io {
  access: RegistryAccess
  store: LayerStore
  /** Where the rootfs goes (`DIR/rootfs`); omitted: store the layers only. */
  rootfsDir?: string
  rootfsMode?: 'auto' | 'materialize'
  platform?: PlatformSpec
  /** The signature policy, or an explicit opt-out (skopeo's --insecure-policy). */
  trust: { policy: Policy; resolveKey?: KeyResolver; registriesD: RegistriesD } | 'insecure-accept-anything'
  decrypt?: DecryptOptions
  concurrency?: number
  /** Unpack limits per layer, and `maxImageBytes`: the most the manifest's layers may add up to. */
  limits?: LayerLimits & { maxImageBytes?: number }
  onEvent?: (e: PullEvent) => void
}

export interface PullResult {
  /** The digest the policy accepted (an index when the image is multi-platform). */
  manifestDigest: string
  /** The platform manifest the rootfs was built from. */
  imageDigest: string
  diffIds: string[]
  layersUnpacked: number
  layersReused: number
  rootfs?: Rootfs
}

export async function pullImage(name: ImageName, o: PullOptions): Promise<PullResult> {
  // Refuse at once what cannot be built, rather than after fetching every layer.
  if (o.rootfsDir) await assertRootfsFree(o.rootfsDir)
  // The layer threads start (tens of ms each, on the other cores) while the policy is checked and
  // the manifests are fetched, rather than delay the first layer.
  layerStager().prestart()
  // gc waits while this is held: a layer found or unpacked here is safe until the record is written.
  const hold = await o.store.hold(o)
  try {
    return await pullHeld(name, o)
  } finally {
    await hold.release()
  }
}

async function pullHeld(name: ImageName, o: PullOptions): Promise<PullResult> {
  // === 1. the signature policy, on the top-level manifest, before anything else
  let topDigest: Digest
  if (o.trust === 'insecure-accept-anything') {
    const src = await openImageSource(name, o.access, o)
    try {
      topDigest = (await src.getManifest(undefined, o)).digest
    } finally {
      await src.close()
    }
  } else {
    const signed = await openSignedImage(name, { access: o.access, registriesD: o.trust.registriesD }, o)
    try {
      const verdict = await evaluate(o.trust.policy, name, signed.manifest.bytes, signed.signatures, {
        ...(o.trust.resolveKey ? { resolveKey: o.trust.resolveKey } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
      })
      topDigest = signed.manifest.digest
      o.onEvent?.({ type: 'verified', manifestDigest: topDigest, scope: verdict.scope })
    } finally {
      await signed.close()
    }
  }

  const source = await openImageSource(name, o.access, o)
  try {
    // === 2. by digest from here on: exactly what the policy accepted
    let doc = await source.getManifest(topDigest, o)
    if (doc.kind === 'index') {
      const chosen = requireManifest(doc.index.manifests, o.platform ?? hostPlatform(), topDigest)
      doc = await source.getManifest(chosen.digest as Digest, o)
      if (doc.kind !== 'manifest')
        throw new CofferError('ERR_OCI_MANIFEST_INVALID', `${chosen.digest} is a nested index`)
    }
    const manifest = doc.manifest
    const parsed = imageConfigSchema.safeParse(
      JSON.parse((await source.getBlobBytes(manifest.config, MAX_CONFIG_BYTES, o)).toString('utf8')),
    )
    if (!parsed.success)
      throw new CofferError('ERR_OCI_MANIFEST_INVALID', `image config: ${describeIssues(parsed.error)}`)
    const diffIds = parsed.data.rootfs.diff_ids
    if (diffIds.length !== manifest.layers.length)
      throw new CofferError(
        'ERR_OCI_MANIFEST_INVALID',
        `the config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`,
      )
    assertImageSize(manifest.layers, o.limits?.maxImageBytes)

    // === 3. layers; a materialized rootfs is built from the bottom up while upper layers still arrive
    let unpacked = 0
    let reused = 0
    const stager = layerStager()
    const jobs = manifest.layers.map((desc, i) => ({ desc, diffId: diffIds[i]!, index: i }))
    const stored = inOrder<StoredLayer>(jobs.length)
    const earlyReason = o.rootfsDir ? materializeReasonUpFront(o.rootfsMode) : undefined
    const early =
      o.rootfsDir && earlyReason
        ? materializeRootfs(o.rootfsDir, stored, earlyReason, o.signal ? { signal: o.signal } : {})
        : undefined
    early?.catch(() => undefined) // awaited below, after the layers
    try {
      await forEachLimit(
        jobs,
        o.concurrency ?? defaultLayerConcurrency(),
        async ({ desc, diffId, index }, signal) => {
          const existing = await o.store.get(diffId)
          if (existing) {
            if (isEncryptedMediaType(desc.mediaType)) await proveKeyRelease(desc, o.decrypt, { signal })
            reused++
            o.onEvent?.({ type: 'layer', diffId, size: desc.size, state: 'reused' })
            stored.put(index, existing)
            return
          }
          // The key first: a missing or revoked key fails before the blob is fetched. The store
          // hashes the tar it unpacks against diffId (and commits nothing on a mismatch).
          const decryption = await layerDecryption(desc, o.decrypt, { signal })
          // The plaintext digest the key's options record is not hashed again here (one pass of
          // four): the HMAC proves the ciphertext is the key holder's, and the tar it decompresses
          // to must match the signed config's diff_id; the compressed bytes themselves are never
          // stored. (`coffer decrypt`, which stores them, checks that digest.)
          const checks = layerChecks(desc, decryption && { key: decryption.key })
          o.onEvent?.({ type: 'layer-start', diffId, digest: desc.digest, size: desc.size })
          const layer = await o.store.stage(
            diffId,
            async (dest, unpackOptions) => {
              const blob = await source.getBlob(desc, { signal })
              let fetched = 0
              const { onEvent } = o
              const stop = sampleProgress(
                () => fetched,
                onEvent && ((bytes) => onEvent({ type: 'layer-progress', diffId, bytes, size: desc.size })),
              )
              try {
                return await stager.stage(blob, checks, dest, {
                  ...unpackOptions,
                  onBytes: (n) => (fetched += n),
                })
              } catch (err) {
                throw layerReadError(desc, err)
              } finally {
                stop()
              }
            },
            { signal, ...o.limits },
          )
          if (layer.reused)
            reused++ // another pull committed it meanwhile
          else unpacked++
          o.onEvent?.({ type: 'layer', diffId, size: desc.size, state: layer.reused ? 'reused' : 'unpacked' })
          stored.put(index, layer)
        },
        o.signal,
      )
    } catch (err) {
      stored.fail(err)
      await early?.catch(() => undefined) // removes the partial tree
      throw err
    }

    // === 4. record and rootfs
    try {
      await o.store.putImage({ manifestDigest: doc.digest, diffIds, references: [formatImageName(name)] })
    } catch (err) {
      await early?.then((r) => r.release()).catch(() => undefined)
      throw err
    }
    const rootfs = early
      ? await early
      : o.rootfsDir
        ? await buildRootfs(o.store, diffIds, o.rootfsDir, {
            ...(o.rootfsMode ? { mode: o.rootfsMode } : {}),
            ...(o.signal ? { signal: o.signal } : {}),
          })
        : undefined
    return {
      manifestDigest: topDigest,
      imageDigest: doc.digest,
      diffIds,
      layersUnpacked: unpacked,
      layersReused: reused,
      ...(rootfs ? { rootfs } : {}),
    }
  } finally {
    await source.close()
  }
}

/**
 * Layers in flight when the caller does not say: at most one per core, at most 3. Every layer's
 * checks and tar parsing share the one JS thread, so layers beyond the cores add buffers, not
 * speed (measured on 2 cores, 8 × 64 MiB: 2 and 3 in flight took the same time, 3 peaked 6 MiB
 * higher).
 */
export function defaultLayerConcurrency(): number {
  return Math.max(1, Math.min(3, availableParallelism()))
}

/** The layer's key must still be released to this guest before its cached plaintext is used. */
async function proveKeyRelease(desc: Descriptor, decrypt: DecryptOptions | undefined, io: Io): Promise<void> {
  if (!decrypt)
    throw new CofferError(
      'ERR_CRYPT_NO_KEY',
      `layer ${desc.digest} is encrypted; give a decryption key or a KBS`,
    )
  await unwrapPrivateOptions(
    decrypt.wrappers,
    decrypt.config,
    desc.annotations ?? {},
    `layer ${desc.digest}`,
    io,
  )
}

/** The manifest's layer sizes must add up to at most `max` (limits.max_image_bytes); checked before any layer is fetched. */
function assertImageSize(layers: readonly Descriptor[], max: number | undefined): void {
  if (max === undefined) return
  const total = layers.reduce((n, l) => n + l.size, 0)
  if (total > max)
    throw new CofferError(
      'ERR_IMAGE_LAYER_TOO_LARGE',
      `the image's ${layers.length} layers add up to ${total} bytes, more than the ${max}-byte image limit`,
      { hint: 'raise limits.max_image_bytes in the image service config if the image is legitimate' },
    )
}
