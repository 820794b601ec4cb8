import { PLAIN_BS } from './content-cipher.js'
import type { Volume } from './volume.js'

/** One thing wrong with a volume, named by plaintext path (or backing name when undecodable). */
export interface FsckProblem {
  readonly path: string
  readonly problem: string
}

export interface FsckReport {
  dirs: number
  files: number
  symlinks: number
  other: number
  /** Plaintext bytes read and authenticated. */
  bytes: number
  problems: FsckProblem[]
}

function reason(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code
  const message = err instanceof Error ? err.message : String(err)
  return typeof code === 'string' ? `${message} [${code}]` : message
}

/**
 * Reads everything in a volume, as `gocryptfs -fsck` does: every directory IV and name, every
 * block of every file, every symlink target. Problems are collected, not thrown; each file block
 * is checked on its own so one bad block does not hide the next.
 */
export async function fsckVolume(vol: Volume, o: { signal?: AbortSignal } = {}): Promise<FsckReport> {
  const report: FsckReport = { dirs: 0, files: 0, symlinks: 0, other: 0, bytes: 0, problems: [] }
  const problem = (path: string, p: string): void => {
    report.problems.push({ path, problem: p })
  }

  async function checkFile(path: string): Promise<void> {
    const f = await vol.open(path)
    try {
      const size = await f.size()
      for (let pos = 0; pos < size; pos += PLAIN_BS) {
        o.signal?.throwIfAborted()
        try {
          report.bytes += (await f.read(pos, PLAIN_BS)).length
        } catch (err) {
          problem(path, `block ${pos / PLAIN_BS}: ${reason(err)}`)
        }
      }
    } finally {
      await f.close()
    }
  }

  async function walk(dir: string): Promise<void> {
    report.dirs++
    let entries
    try {
      entries = await vol.readdir(dir, {
        onSkip: (e) =>
          problem(`${dir === '/' ? '' : dir}/${e.backingName}`, `undecodable entry: ${e.reason}`),
      })
    } catch (err) {
      problem(dir, reason(err))
      return
    }
    for (const e of entries) {
      const path = `${dir === '/' ? '' : dir}/${e.name}`
      try {
        if (e.type === 'dir') await walk(path)
        else if (e.type === 'file') {
          report.files++
          await checkFile(path)
        } else if (e.type === 'symlink') {
          report.symlinks++
          await vol.readlink(path)
        } else report.other++
      } catch (err) {
        problem(path, reason(err))
      }
    }
  }

  await walk('/')
  return report
}
