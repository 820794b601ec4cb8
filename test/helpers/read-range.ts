import { constants } from 'node:fs'
import * as fs from 'node:fs/promises'

/**
 * Reads up to `length` bytes at `position` of `path` with one read(2) on a fresh handle (short
 * only at end of file). `direct` opens it O_DIRECT, so on a FUSE mount the server answers even
 * if the kernel has the pages cached.
 */
export async function readRange(
  path: string,
  position: number,
  length: number,
  o: { direct?: boolean } = {},
): Promise<Buffer> {
  const fh = await fs.open(path, o.direct ? constants.O_RDONLY | constants.O_DIRECT : 'r')
  try {
    const buf = Buffer.alloc(length)
    const { bytesRead } = await fh.read(buf, 0, length, position)
    return buf.subarray(0, bytesRead)
  } finally {
    await fh.close()
  }
}
