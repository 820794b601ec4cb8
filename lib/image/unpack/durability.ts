/**
 * Makes an unpacked layer durable. A layer of few files gets each file fsynced and closed in the
 * background as soon as the unpacker is done with it (so the disk flushes one file while the next
 * is written) and every directory it created or changed fsynced at the end, after its attributes
 * were set: no fork, and no flushing of other processes' dirty data. A layer of many small files
 * would wait for one journal commit per file that way, so past MAX_FILE_SYNCS files the rest are
 * only closed and the layer ends with one `sync -f` (syncfs) of its file system instead.
 */
import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)

/** Files fsynced one by one per layer; beyond that, one syncfs is cheaper. */
export const MAX_FILE_SYNCS = 64
/**
 * fsyncs in flight in the whole process: the libuv pool has 4 threads, shared with zlib, file
 * writes and the rootfs copy, and several layers unpack at once.
 */
const IN_FLIGHT = 2
const running = new Set<Promise<void>>()

export class LayerDurability {
  private readonly mine = new Set<Promise<void>>()
  private failure: { err: unknown } | undefined
  private files = 0
  /** Directories (relative to the root, '' is the root) whose entries or attributes changed. */
  private readonly dirs = new Set<string>([''])

  constructor(private readonly root: string) {}

  /** Takes ownership of `fh`: it is fsynced (while the layer has few files), then closed. */
  async syncAndClose(fh: FileHandle): Promise<void> {
    if (++this.files > MAX_FILE_SYNCS) {
      await fh.close()
      return
    }
    while (running.size >= IN_FLIGHT) await Promise.race(running)
    const done: Promise<void> = fh
      .sync()
      .finally(() => fh.close())
      .catch((err: unknown) => void (this.failure ??= { err }))
      .finally(() => {
        running.delete(done)
        this.mine.delete(done)
      })
    running.add(done)
    this.mine.add(done)
  }

  dirChanged(rel: string): void {
    this.dirs.add(rel)
  }

  /** Waits for every file, then makes the rest durable. Throws the first failure. */
  async finish(): Promise<void> {
    await this.settle()
    if (this.failure) throw this.failure.err
    if (this.files > MAX_FILE_SYNCS) {
      await execFileP('sync', ['-f', this.root], { timeout: 120_000 })
      return
    }
    const deepestFirst = [...this.dirs].sort((a, b) => b.length - a.length)
    for (let i = 0; i < deepestFirst.length; i += IN_FLIGHT) {
      await Promise.all(
        deepestFirst.slice(i, i + IN_FLIGHT).map((rel) => fsyncDirectory(join(this.root, rel))),
      )
    }
  }

  /** Closes everything still open (also after a failure); never throws. */
  async settle(): Promise<void> {
    while (this.mine.size > 0) await Promise.all(this.mine)
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
