/**
 * What the Volume remembers about a backing inode while at least one handle has it open: the file
 * ID from its header and the backing file's size. Without it every 4 KiB FUSE request costs an
 * fstat and a header read (docs/storage.md measured 3 MB/s). It is only valid because this process
 * is the only writer of the backing directory (the same rule gocryptfs has), and every write and
 * truncate runs under the inode lock and updates it.
 */
export interface InodeState {
  /** undefined: not known yet (read the header), or the file is empty (no header). */
  fileId?: Buffer
  /** Backing-file size in bytes; undefined: not known yet (fstat). */
  cipherBytes?: number
}

export class InodeCache {
  private readonly entries = new Map<string, { state: InodeState; refs: number }>()

  /** The shared state of `inode`; pair with `release` when the handle closes. */
  acquire(inode: string): InodeState {
    let e = this.entries.get(inode)
    if (!e) {
      e = { state: {}, refs: 0 }
      this.entries.set(inode, e)
    }
    e.refs++
    return e.state
  }

  release(inode: string): void {
    const e = this.entries.get(inode)
    if (e && --e.refs <= 0) this.entries.delete(inode)
  }

  /** Number of inodes with open handles (tests check that handles are released). */
  get size(): number {
    return this.entries.size
  }
}
