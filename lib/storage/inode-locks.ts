/**
 * Serialises operations on one backing inode. Writes are read-modify-write per 4 KiB block, so two
 * overlapping writes (through two handles, or two hard links to one file) must not interleave.
 */
export class InodeLocks {
  private readonly tails = new Map<string, Promise<unknown>>()

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve()
    const result = previous.then(fn, fn)
    const tail = result.catch(() => undefined)
    this.tails.set(key, tail)
    try {
      return await result
    } finally {
      // The last one out removes the entry, so the map does not grow with every inode ever touched.
      if (this.tails.get(key) === tail) this.tails.delete(key)
    }
  }
}
