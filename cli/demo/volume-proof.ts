/**
 * What the demo shows of an encrypted volume: a file written through the mount arrives in the
 * backing directory with an encrypted name and encrypted content (gocryptfs v2: an 18-byte header,
 * then 4096-byte blocks each carrying a 16-byte nonce and a 16-byte GCM tag), and reads back as
 * written. Runs in the demo process, which must not be the one serving the mount.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CofferError } from '../../lib/util/errors.js'

/** gocryptfs v2 content format (specs/storage.md §1.6). */
const FILE_HEADER_BYTES = 18
const BLOCK_BYTES = 4096
const BLOCK_OVERHEAD_BYTES = 32
/** Per-directory IV file of an EME-named directory; not a user file. */
const DIRIV = 'gocryptfs.diriv'

export const VOLUME_FILE = 'written-in-the-tee.txt'

export interface VolumeProof {
  /** The file's name inside the mount. */
  file: string
  plaintext: string
  /** What the mount returned when the file was read back. */
  readBack: string
  /** The backing directory's entries: the diriv and the encrypted name. */
  backingNames: string[]
  /** The encrypted name of the file in the backing directory. */
  encryptedName: string
  /** The backing file, base64 (it is small). */
  ciphertext: string
}

/** Writes a file into the mounted volume, checks the backing holds only ciphertext, reads it back. */
export async function proveEncryptedVolume(
  mountpoint: string,
  backing: string,
  plaintext: string,
): Promise<VolumeProof> {
  await throughMount('write', () => writeFile(join(mountpoint, VOLUME_FILE), plaintext))
  const backingNames = (await readdir(backing)).sort()
  const encrypted = backingNames.filter((n) => n !== DIRIV)
  if (encrypted.length !== 1 || backingNames.some((n) => n.includes('written')))
    throw new CofferError(
      'ERR_INTERNAL',
      `the backing directory shows plaintext names: ${backingNames.join(', ')}`,
    )
  const encryptedName = encrypted[0]!
  const ciphertext = await readFile(join(backing, encryptedName))
  const plain = Buffer.from(plaintext)
  if (ciphertext.includes(plain) || ciphertext.length !== cipherSize(plain.length))
    throw new CofferError(
      'ERR_INTERNAL',
      `the backing file is not gocryptfs ciphertext of the written file (${ciphertext.length} bytes)`,
    )
  const readBack = await throughMount('read', () => readFile(join(mountpoint, VOLUME_FILE), 'utf8'))
  if (readBack !== plaintext)
    throw new CofferError(
      'ERR_STORAGE_CORRUPT',
      'the file read back from the volume differs from what was written',
    )
  return {
    file: VOLUME_FILE,
    plaintext,
    readBack,
    backingNames,
    encryptedName,
    ciphertext: ciphertext.toString('base64'),
  }
}

/** A read or write through the mount; a mount whose server is gone answers ENOTCONN. */
async function throughMount<T>(what: string, io: () => Promise<T>): Promise<T> {
  try {
    return await io()
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error'
    throw new CofferError(
      'ERR_STORAGE_MOUNT_FAILED',
      `cannot ${what} ${VOLUME_FILE} through the mount (${code})`,
      {
        cause,
      },
    )
  }
}

/** Backing size of a `plain`-byte file (0 stays 0). */
export function cipherSize(plain: number): number {
  if (plain === 0) return 0
  const full = Math.floor(plain / BLOCK_BYTES)
  const rest = plain % BLOCK_BYTES
  return (
    FILE_HEADER_BYTES + full * (BLOCK_BYTES + BLOCK_OVERHEAD_BYTES) + (rest ? rest + BLOCK_OVERHEAD_BYTES : 0)
  )
}
