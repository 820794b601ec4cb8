/** The sample image's rootfs as the guest must see it after the pull. */
import { createHash } from 'node:crypto'
import { lstat, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { CofferError } from '../../lib/util/errors.js'
import { SAMPLE_LAYERS, type SampleEntry } from './sample-image.js'

/** One entry of a rootfs as the demo shows and reports it. */
export interface RootfsEntry {
  path: string
  type: 'file' | 'directory' | 'symlink'
  mode: number
  /** Files: size and sha256 of the content; symlinks: the target. */
  size?: number
  sha256?: string
  /** Files: the first line, for showing. */
  firstLine?: string
  linkname?: string
}

/**
 * Compares the rootfs at `root` with what `layers` put there (later layers win; the sample has no
 * whiteouts), entry by entry: type, permission bits, file content, symlink target. Returns the
 * entries in layer order; the first difference is ERR_IMAGE_ROOTFS_FAILED.
 */
export async function checkSampleRootfs(
  root: string,
  layers: SampleEntry[][] = SAMPLE_LAYERS,
): Promise<RootfsEntry[]> {
  const expected = new Map<string, SampleEntry>()
  for (const entries of layers) for (const e of entries) expected.set(e.path, e)
  const out: RootfsEntry[] = []
  for (const [path, e] of expected) {
    const type = e.type ?? 'file'
    const differs = (what: string): CofferError =>
      new CofferError(
        'ERR_IMAGE_ROOTFS_FAILED',
        `the pulled rootfs differs from the sample image at /${path}: ${what}`,
      )
    const st = await lstat(join(root, path)).catch(() => undefined)
    if (!st) throw differs('missing')
    const actual = st.isDirectory()
      ? 'directory'
      : st.isSymbolicLink()
        ? 'symlink'
        : st.isFile()
          ? 'file'
          : 'other'
    if (actual !== type) throw differs(`a ${actual}, not a ${type}`)
    const mode = st.mode & 0o7777
    if (type === 'symlink') {
      const linkname = await readlink(join(root, path))
      if (linkname !== e.linkname) throw differs(`points to ${linkname}`)
      out.push({ path, type, mode, linkname })
      continue
    }
    if (mode !== (e.mode ?? (type === 'directory' ? 0o755 : 0o644))) throw differs(`mode ${mode.toString(8)}`)
    if (type === 'directory') {
      out.push({ path, type, mode })
      continue
    }
    const content = await readFile(join(root, path))
    if (!content.equals(Buffer.from(e.content ?? ''))) throw differs('other content')
    out.push({
      path,
      type,
      mode,
      size: content.length,
      sha256: createHash('sha256').update(content).digest('hex'),
      firstLine: content.toString('utf8').split('\n')[0]!,
    })
  }
  return out
}
