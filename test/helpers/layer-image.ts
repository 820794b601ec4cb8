/**
 * Writes an OCI image layout whose layers are arbitrary `TarEntry` lists (whiteouts, devices,
 * hardlinks across layers…), for comparing coffer's unpacker with umoci. Layers are small and
 * built in memory. Also a tree snapshot that two unpacked rootfs can be compared with.
 */
import { createHash } from 'node:crypto'
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { tarBuffer, type TarEntry } from './tar-builder.js'

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')

export interface LayerImage {
  diffIds: string[]
  /** The uncompressed layer tars, bottom first. */
  tars: Buffer[]
  manifestDigest: string
}

async function blob(dir: string, data: Buffer | string): Promise<{ digest: string; size: number }> {
  const hex = sha256(data)
  await writeFile(join(dir, 'blobs', 'sha256', hex), data)
  return { digest: `sha256:${hex}`, size: Buffer.byteLength(data) }
}

export async function writeLayerImage(dir: string, layers: TarEntry[][], tag: string): Promise<LayerImage> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true })
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  const tars: Buffer[] = []
  const descs = []
  for (const entries of layers) {
    const tar = await tarBuffer(entries)
    tars.push(tar)
    const b = await blob(dir, gzipSync(tar))
    descs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...b })
  }
  const diffIds = tars.map((t) => `sha256:${sha256(t)}`)
  const config = await blob(
    dir,
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: diffIds },
    }),
  )
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: descs,
  })
  const m = await blob(dir, manifest)
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...m,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  )
  return { diffIds, tars, manifestDigest: m.digest }
}

export interface NodeInfo {
  type: 'dir' | 'file' | 'symlink' | 'char' | 'block' | 'fifo' | 'other'
  mode: number
  uid: number
  gid: number
  content?: string
  link?: string
  rdev?: number
  mtime?: number
  /** Other paths sharing this inode (hardlinks), sorted. */
  links?: string[]
}

/**
 * path → NodeInfo for every entry under root. `mtimes` picks which kinds keep their mtime in the
 * snapshot (umoci does not restore every kind; see the interop test).
 */
export async function snapshotTree(
  root: string,
  o: { mtimes?: Array<NodeInfo['type']>; owners?: boolean } = {},
): Promise<Record<string, NodeInfo>> {
  const out: Record<string, NodeInfo> = {}
  const inodes = new Map<number, string[]>()
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const p = rel === '' ? name : `${rel}/${name}`
      const abs = join(root, p)
      const s = await lstat(abs)
      const type: NodeInfo['type'] = s.isDirectory()
        ? 'dir'
        : s.isFile()
          ? 'file'
          : s.isSymbolicLink()
            ? 'symlink'
            : s.isCharacterDevice()
              ? 'char'
              : s.isBlockDevice()
                ? 'block'
                : s.isFIFO()
                  ? 'fifo'
                  : 'other'
      const n: NodeInfo = {
        type,
        mode: type === 'symlink' ? 0 : s.mode & 0o7777,
        uid: o.owners === false ? 0 : s.uid,
        gid: o.owners === false ? 0 : s.gid,
      }
      if (type === 'file') n.content = sha256(await readFile(abs))
      if (type === 'symlink') n.link = await readlink(abs)
      if (type === 'char' || type === 'block') n.rdev = s.rdev
      if (o.mtimes?.includes(type)) n.mtime = s.mtimeMs
      if (type !== 'dir' && s.nlink > 1) inodes.set(s.ino, [...(inodes.get(s.ino) ?? []), p])
      out[p] = n
      if (type === 'dir') await walk(p)
    }
  }
  await walk('')
  for (const paths of inodes.values()) {
    if (paths.length < 2) continue
    for (const p of paths) (out[p] as NodeInfo).links = [...paths].sort()
  }
  return out
}
