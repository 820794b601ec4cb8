/**
 * Builds a container rootfs from an image's stored layers (bottom first), in `dir`:
 *
 * - **overlay**: `dir/rootfs` is an overlayfs mount with the layer directories as lowerdirs and
 *   `dir/upper` + `dir/work` for the container's writes. Chosen when we are root, the kernel lists
 *   `overlay` in /proc/filesystems, every layer was stored with overlay-style markers (char 0:0
 *   whiteouts, trusted.overlay.opaque), no layer has a hardlink into a lower layer (overlayfs cannot
 *   link across layers), and the mount actually succeeds.
 * - **materialized**: otherwise `dir/rootfs` is a plain tree: each layer's recorded whiteouts and
 *   opaque dirs are applied to what lies below, then the layer is copied over it with owners
 *   (root only), modes, mtimes, devices (root only) and hardlinks (within a layer, and across
 *   layers for the links the unpacker recorded) kept. Every write goes through `safe-path.ts`.
 *
 * `release()` unmounts (overlay) and removes `dir`.
 */
import { execFile } from 'node:child_process'
import {
  chmod,
  copyFile,
  constants,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  utimes,
} from 'node:fs/promises'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import type { LayerStore, StoredLayer } from './layer-store/index.js'
import { ensureNoSymlinkOnPath, resolveInside, setDirTimes } from './unpack/safe-path.js'
import { makeDevice, makeFifo } from './unpack/special-files.js'

const execFileP = promisify(execFile)
/** The kernel takes mount options in one page. */
const MAX_MOUNT_OPTIONS = 4000

export interface Rootfs {
  kind: 'overlay' | 'materialized'
  /** The container's root directory. */
  path: string
  /** Why overlay was not used (for logs), when `kind` is 'materialized'. */
  fallbackReason?: string
  release(): Promise<void>
}

export interface RootfsOptions extends Io {
  /** 'auto' (default) tries overlay first; 'materialize' never mounts. */
  mode?: 'auto' | 'materialize'
}

/** Builds the rootfs of the image whose layers are `diffIds` (bottom first) in `dir` (created). */
export async function buildRootfs(
  store: LayerStore,
  diffIds: string[],
  dir: string,
  o: RootfsOptions = {},
): Promise<Rootfs> {
  const layers: StoredLayer[] = []
  for (const d of diffIds) {
    const l = await store.get(d)
    if (!l) throw new CofferError('ERR_IMAGE_LAYER_NOT_FOUND', `layer ${d} is not in the store`)
    layers.push(l)
  }
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const rootfs = join(dir, 'rootfs')
  await mkdir(rootfs, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'EEXIST' ? rootfsExists(dir) : err
  })
  const release = async (): Promise<void> => {
    await rm(dir, { recursive: true, force: true })
  }

  let reason = o.mode === 'materialize' ? 'materialize requested' : await overlayUnusable(layers)
  if (reason === undefined) {
    const upper = join(dir, 'upper')
    const work = join(dir, 'work')
    await mkdir(upper, { mode: 0o755 })
    await mkdir(work, { mode: 0o700 })
    // overlayfs lists lowerdirs top first.
    const lower = layers.map((l) => l.rootfs).reverse()
    const opts = `lowerdir=${lower.join(':')},upperdir=${upper},workdir=${work}`
    try {
      await execFileP('mount', ['-t', 'overlay', 'overlay', '-o', opts, rootfs], { timeout: 60_000 })
      return {
        kind: 'overlay',
        path: rootfs,
        release: async () => {
          await execFileP('umount', [rootfs], { timeout: 60_000 })
          await release()
        },
      }
    } catch (err) {
      reason = `overlay mount failed: ${(err as { stderr?: string }).stderr?.trim() ?? String(err)}`
      await rm(upper, { recursive: true, force: true })
      await rm(work, { recursive: true, force: true })
    }
  }
  return applyLayers(dir, layers, reason, o)
}

/**
 * Why `buildRootfs` will materialize, when that is known before any layer is stored (it would try
 * overlay only in 'auto' mode as root): the caller can then build the tree while the layers are
 * still being pulled (`materializeRootfs`).
 */
export function materializeReasonUpFront(mode: RootfsOptions['mode']): string | undefined {
  if (mode === 'materialize') return 'materialize requested'
  if (process.getuid?.() !== 0) return 'not root'
  return undefined
}

/**
 * A materialized rootfs in `dir` (created), built from `layers` (bottom first) as they arrive:
 * each layer is applied as soon as the iterable yields it, so a pull copies the lower layers into
 * the tree while it still fetches the upper ones. The result equals `buildRootfs` in materialize
 * mode. If `layers` throws, the partial tree is removed and the error rethrown.
 */
export async function materializeRootfs(
  dir: string,
  layers: AsyncIterable<StoredLayer>,
  reason: string,
  o: Io = {},
): Promise<Rootfs> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await mkdir(join(dir, 'rootfs'), { mode: 0o755 })
  return applyLayers(dir, layers, reason, o)
}

async function applyLayers(
  dir: string,
  layers: Iterable<StoredLayer> | AsyncIterable<StoredLayer>,
  reason: string,
  o: Io,
): Promise<Rootfs> {
  const rootfs = join(dir, 'rootfs')
  const release = async (): Promise<void> => {
    await rm(dir, { recursive: true, force: true })
  }
  try {
    for await (const l of layers) {
      if (o.signal?.aborted) throw new CofferError('ERR_CANCELED', 'rootfs build canceled')
      await applyLayer(rootfs, l)
    }
  } catch (err) {
    await release()
    throw err
  }
  return { kind: 'materialized', path: rootfs, fallbackReason: reason, release }
}

/**
 * A rootfs is never built over an existing one (as skopeo and umoci refuse a non-empty destination):
 * ERR_IMAGE_ROOTFS_EXISTS if `dir/rootfs` exists.
 */
export async function assertRootfsFree(dir: string): Promise<void> {
  if (
    await lstat(join(dir, 'rootfs')).then(
      () => true,
      () => false,
    )
  )
    throw rootfsExists(dir)
}

function rootfsExists(dir: string): CofferError {
  const rootfs = join(dir, 'rootfs')
  return new CofferError('ERR_IMAGE_ROOTFS_EXISTS', `${rootfs} already exists (from an earlier pull?)`, {
    hint: `pick another --rootfs directory, or remove the old rootfs first: umount ${rootfs} if it is an overlay mount, then delete ${rootfs} (and ${join(dir, 'upper')}, ${join(dir, 'work')} if there)`,
  })
}

async function overlayUnusable(layers: StoredLayer[]): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root'
  const fss = await readFile('/proc/filesystems', 'utf8').catch(() => '')
  if (!/\toverlay$/m.test(fss)) return 'overlayfs not available'
  if (layers.length === 0) return 'no layers'
  for (const l of layers) {
    if (!l.meta.overlayMarkers) return `layer ${l.diffId} has no overlay markers`
    if (l.meta.externalLinks.length > 0) return `layer ${l.diffId} hardlinks into a lower layer`
    if (/[:,\\]/.test(l.rootfs)) return 'store path cannot be given to overlayfs'
  }
  if (layers.reduce((n, l) => n + l.rootfs.length + 1, 0) > MAX_MOUNT_OPTIONS)
    return 'too many layers for one mount'
  // overlayfs shows the topmost copy of a directory: one a layer only created implicitly (0755
  // root:root) would hide the lower directory's owner and mode.
  for (const [i, l] of layers.entries()) {
    for (const d of l.meta.implicitDirs) {
      const mine = await lstat(join(l.rootfs, d))
      for (const lower of layers.slice(0, i).reverse()) {
        const st = await lstat(join(lower.rootfs, d)).catch(() => null)
        if (!st) continue
        if (st.mode !== mine.mode || st.uid !== mine.uid || st.gid !== mine.gid) {
          return `layer ${l.diffId} would hide the attributes of ${JSON.stringify(d)}`
        }
        break
      }
    }
  }
  return undefined
}

/** === one layer onto the materialized tree: whiteouts, opaque dirs, copy, cross-layer hardlinks */
async function applyLayer(root: string, layer: StoredLayer): Promise<void> {
  const isRoot = process.getuid?.() === 0
  // Lower directories whose children this layer changes keep their times (as umoci does); only a
  // directory the layer itself declares gets new attributes.
  const kept = new Map<string, { atime: Date; mtime: Date }>() // rel → times
  const keep = async (abs: string): Promise<void> => {
    const rel = relative(root, abs)
    const st = kept.has(rel) ? null : await lstat(abs).catch(() => null)
    if (st?.isDirectory()) kept.set(rel, { atime: st.atime, mtime: st.mtime })
  }
  for (const w of layer.meta.whiteouts) {
    const parent = await existingDir(root, w.includes('/') ? w.slice(0, w.lastIndexOf('/')) : '')
    if (parent) await keep(parent)
    await removeInTree(root, w)
  }
  for (const d of layer.meta.opaqueDirs) {
    const abs = await existingDir(root, d)
    // Emptied by an opaque marker: a new mtime, as umoci gives it.
    if (abs) for (const n of await readdir(abs)) await rm(join(abs, n), { recursive: true, force: true })
  }
  const implicit = new Set(layer.meta.implicitDirs)
  const whiteouts = new Set(layer.meta.whiteouts)
  const linked = new Map<string, string>() // "dev:ino" in the layer → first copy's path in the tree
  const dirTimes: Array<{ rel: string; mtime: Date }> = []

  const copy = async (rel: string): Promise<void> => {
    const src = join(layer.rootfs, rel)
    for (const name of await readdir(src)) {
      const child = rel === '' ? name : `${rel}/${name}`
      const s = await lstat(join(src, name))
      if (whiteouts.has(child) && s.isCharacterDevice() && s.rdev === 0) continue
      await ensureNoSymlinkOnPath(root, child)
      const abs = resolveInside(root, child)
      const d = await lstat(abs).catch(() => null)
      if (s.isDirectory()) {
        if (d?.isDirectory()) {
          await keep(abs)
          if (implicit.has(child)) {
            await copy(child) // not declared by this layer: the lower directory's attributes stay
            continue
          }
        } else {
          if (d) await rm(abs, { recursive: true, force: true })
          await mkdir(abs, { mode: 0o700 })
        }
      } else {
        if (d) await rm(abs, { recursive: true, force: true })
        const key = `${s.dev}:${s.ino}`
        const first = s.nlink > 1 ? linked.get(key) : undefined
        if (first !== undefined) {
          await link(first, abs)
          continue
        }
        if (s.isFile()) await copyFile(join(src, name), abs, constants.COPYFILE_EXCL)
        else if (s.isSymbolicLink()) await symlink(await readlink(join(src, name)), abs)
        else if (s.isFIFO()) await makeFifo(abs)
        else if (s.isCharacterDevice() || s.isBlockDevice()) {
          await makeDevice(
            abs,
            s.isBlockDevice() ? 'b' : 'c',
            Math.floor(s.rdev / 256) & 0xfff,
            (s.rdev & 0xff) | ((s.rdev >> 12) & 0xfff00),
          )
        } else continue
        if (s.nlink > 1) linked.set(key, abs)
      }
      if (isRoot) await lchown(abs, s.uid, s.gid)
      if (s.isSymbolicLink()) await lutimes(abs, s.atime, s.mtime)
      else {
        await chmod(abs, s.mode & 0o7777)
        if (s.isDirectory()) {
          dirTimes.push({ rel: child, mtime: s.mtime })
          await copy(child)
        } else await utimes(abs, s.atime, s.mtime)
      }
    }
  }
  await copy('')

  for (const { path, target } of layer.meta.externalLinks) {
    await ensureNoSymlinkOnPath(root, target)
    const t = await lstat(resolveInside(root, target)).catch(() => null)
    if (!t || t.isDirectory()) {
      throw new CofferError(
        'ERR_IMAGE_HARDLINK_INVALID',
        `${JSON.stringify(path)}: lower-layer target ${JSON.stringify(target)} missing`,
      )
    }
    await ensureNoSymlinkOnPath(root, path)
    const abs = resolveInside(root, path)
    await rm(abs, { recursive: true, force: true })
    await link(resolveInside(root, target), abs)
  }
  for (const d of layer.meta.opaqueDirs) kept.delete(d)
  const restored = [...kept].sort((a, b) => b[0].length - a[0].length)
  for (const [rel, t] of restored) await setDirTimes(root, rel, t.atime, t.mtime)
  dirTimes.sort((a, b) => b.rel.length - a.rel.length)
  for (const { rel, mtime } of dirTimes) await setDirTimes(root, rel, mtime, mtime)
}

/** Deletes `rel` from the tree unless a symlink or file on the way means it cannot be there. */
async function removeInTree(root: string, rel: string): Promise<void> {
  try {
    await ensureNoSymlinkOnPath(root, rel)
  } catch (err) {
    if (err instanceof CofferError && err.code === 'ERR_IMAGE_UNSAFE_PATH') return
    throw err
  }
  await rm(resolveInside(root, rel), { recursive: true, force: true })
}

async function existingDir(root: string, rel: string): Promise<string | undefined> {
  if (rel === '') return root
  try {
    await ensureNoSymlinkOnPath(root, `${rel}/x`)
  } catch (err) {
    if (err instanceof CofferError && err.code === 'ERR_IMAGE_UNSAFE_PATH') return undefined
    throw err
  }
  const abs = resolveInside(root, rel)
  return (await lstat(abs).catch(() => null))?.isDirectory() ? abs : undefined
}
