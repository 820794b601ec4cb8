import type { VolumeFile } from '../open-file.js'
import { posixError } from '../posix-error.js'

/**
 * FUSE file handles: small integers the kernel hands back with every read/write. The binding
 * passes them as uint32 and treats 0 as "no handle", so numbers start at 1 and are reused only
 * after wrapping around past every open one.
 */
export class HandleTable {
  private readonly files = new Map<number, VolumeFile>()
  private next = 1

  add(f: VolumeFile): number {
    while (this.files.has(this.next) || this.next === 0) this.next = (this.next + 1) % 2 ** 32
    const fh = this.next
    this.files.set(fh, f)
    this.next = (this.next + 1) % 2 ** 32
    return fh
  }

  /** The open file behind `fh`; EBADF for a handle this table never gave out. */
  get(fh: number): VolumeFile {
    const f = this.files.get(fh)
    if (!f) throw posixError('EBADF', 'fh', String(fh))
    return f
  }

  remove(fh: number): VolumeFile {
    const f = this.get(fh)
    this.files.delete(fh)
    return f
  }

  /** Closes every file still open (at unmount). */
  async closeAll(): Promise<void> {
    const all = [...this.files.values()]
    this.files.clear()
    await Promise.allSettled(all.map((f) => f.close()))
  }

  get size(): number {
    return this.files.size
  }
}
