/**
 * Makes an unpacked layer durable without syncing the whole file system: each regular file is
 * fsynced and closed in the background as soon as the unpacker is done with it (a few at a time,
 * so the disk flushes one file while the next is written, and the libuv pool stays free for zlib
 * and writes), and every directory the layer created or changed is fsynced at the end, after its
 * attributes were set. `sync -f` (syncfs) did the same job but also flushed every other process's
 * dirty data on the file system, and cost a fork of the whole Node process per layer.
 */
import { constants } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'

/** fsyncs in flight per layer: the libuv pool has 4 threads, shared with zlib and file writes. */
const IN_FLIGHT = 2

export class LayerDurability {
  private readonly inFlight = new Set<Promise<void>>()
  private failure: { err: unknown } | undefined
  /** Directories (relative to the root, '' is the root) whose entries or attributes changed. */
  private readonly dirs = new Set<string>([''])

  constructor(private readonly root: string) {}

  /** Takes ownership of `fh`: it is fsynced, then closed. */
  async syncAndClose(fh: FileHandle): Promise<void> {
    while (this.inFlight.size >= IN_FLIGHT) await Promise.race(this.inFlight)
    const done: Promise<void> = fh
      .sync()
      .finally(() => fh.close())
      .catch((err: unknown) => void (this.failure ??= { err }))
      .finally(() => this.inFlight.delete(done))
    this.inFlight.add(done)
  }

  dirChanged(rel: string): void {
    this.dirs.add(rel)
  }

  /** Waits for every file, then fsyncs the directories, deepest first. Throws the first failure. */
  async finish(): Promise<void> {
    await this.settle()
    if (this.failure) throw this.failure.err
    const deepestFirst = [...this.dirs].sort((a, b) => b.length - a.length)
    for (let i = 0; i < deepestFirst.length; i += IN_FLIGHT) {
      await Promise.all(
        deepestFirst.slice(i, i + IN_FLIGHT).map((rel) => fsyncDirectory(join(this.root, rel))),
      )
    }
  }

  /** Closes everything still open (also after a failure); never throws. */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight)
  }
}

/** A directory replaced by a file or symlink, or removed, later in the layer is skipped: its parent's fsync covers that. */
async function fsyncDirectory(path: string): Promise<void> {
  let fh: FileHandle
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return
    throw err
  }
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
