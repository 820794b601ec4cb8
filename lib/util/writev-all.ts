import { writevSync } from 'node:fs'

/**
 * Writes every slice at the file's current offset with blocking writev(2) calls, one per call
 * unless the kernel writes short (a full disk on its way), in which case it goes on with the rest.
 * For threads that have nothing else to do meanwhile (worker threads).
 */
export function writevAllSync(fd: number, slices: readonly Uint8Array[]): void {
  let rest = slices
  while (rest.length > 0) {
    let written = writevSync(fd, rest as Uint8Array[])
    while (rest.length > 0 && written >= rest[0]!.length) {
      written -= rest[0]!.length
      rest = rest.slice(1)
    }
    if (written > 0) rest = [rest[0]!.subarray(written), ...rest.slice(1)]
  }
}
