/**
 * Builds layer tars entry by entry with tar-stream's packer, including entries no sane tool writes
 * ('..' names, absolute names, links out of the root), for the unpacker's tests.
 */
import { Readable } from 'node:stream'
import { pack } from 'tar-stream'

/** A fixed mtime (2020-01-01T00:00:00Z) so trees compare across runs. */
export const T0 = new Date(Date.UTC(2020, 0, 1))

export type TarEntry =
  | { name: string; type: 'dir'; mode?: number; uid?: number; gid?: number; mtime?: Date }
  | {
      name: string
      type?: 'file'
      content?: string | Buffer
      mode?: number
      uid?: number
      gid?: number
      mtime?: Date
      pax?: Record<string, string>
    }
  | { name: string; type: 'symlink' | 'link'; target: string; mtime?: Date }
  | { name: string; type: 'char' | 'block'; major: number; minor: number }
  | { name: string; type: 'fifo' }
  /** A regular file of `size` zero bytes produced lazily (never held in memory). */
  | { name: string; type: 'big'; size: number }

/** The tar as a stream; `big` entries are generated in 1 MiB chunks. */
export function tarStream(entries: TarEntry[]): Readable {
  const p = pack()
  const fill = async (): Promise<void> => {
    for (const e of entries) {
      const base = { name: e.name, mtime: 'mtime' in e && e.mtime ? e.mtime : T0, uid: 0, gid: 0 }
      switch (e.type) {
        case 'dir':
          p.entry({ ...base, type: 'directory', mode: e.mode ?? 0o755, uid: e.uid ?? 0, gid: e.gid ?? 0 })
          break
        case 'symlink':
        case 'link':
          p.entry({ ...base, type: e.type, linkname: e.target, mode: 0o777 })
          break
        case 'char':
        case 'block':
          p.entry({
            ...base,
            type: e.type === 'char' ? 'character-device' : 'block-device',
            devmajor: e.major,
            devminor: e.minor,
            mode: 0o644,
          })
          break
        case 'fifo':
          p.entry({ ...base, type: 'fifo', mode: 0o644 })
          break
        case 'big': {
          const sink = p.entry({ ...base, type: 'file', size: e.size, mode: 0o644 })
          const chunk = Buffer.alloc(1 << 20)
          let left = e.size
          while (left > 0) {
            const n = Math.min(left, chunk.length)
            left -= n
            if (!sink.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
              await new Promise<void>((r) => sink.once('drain', () => r()))
            }
          }
          await new Promise<void>((r, j) => {
            sink.once('error', j)
            sink.end(() => r())
          })
          break
        }
        default: {
          const header = {
            ...base,
            type: 'file' as const,
            mode: e.mode ?? 0o644,
            uid: e.uid ?? 0,
            gid: e.gid ?? 0,
            ...(e.pax ? { pax: e.pax } : {}),
          }
          p.entry(header, e.content ?? '')
        }
      }
    }
    p.finalize()
  }
  fill().catch((err: unknown) => p.destroy(err as Error))
  return Readable.from(p as unknown as AsyncIterable<Buffer>)
}

/** The whole tar in memory (small test layers only). */
export async function tarBuffer(entries: TarEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of tarStream(entries)) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}
