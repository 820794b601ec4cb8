/**
 * The `sealed` store's master key file: exactly 32 random bytes, raw, mode 0600. It wraps every
 * entry's data key (AES-256-GCM, via the AWS Encryption SDK's raw AES keyring), so whoever reads it
 * reads the store: keep it off the store's volume.
 */
import { randomBytes } from 'node:crypto'
import { dirname } from 'node:path'
import { open } from 'node:fs/promises'
import { fsyncDir } from '../../../lib/util/atomic-file.js'
import { CofferError } from '../../../lib/util/errors.js'

export const MASTER_KEY_BYTES = 32

/**
 * Creates a new master key file (0600, never overwriting: an existing file is
 * ERR_KBS_STORE_MASTER_KEY_INVALID, since replacing a key makes every sealed entry unreadable).
 */
export async function generateMasterKeyFile(path: string): Promise<void> {
  let fh
  try {
    fh = await open(path, 'wx', 0o600)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') {
      throw new CofferError(
        'ERR_KBS_STORE_MASTER_KEY_INVALID',
        `master key file ${path} exists; refusing to overwrite it`,
      )
    }
    throw new CofferError('ERR_KBS_STORE_UNAVAILABLE', `cannot create master key file ${path}: ${code}`, {
      cause: err,
    })
  }
  try {
    await fh.writeFile(randomBytes(MASTER_KEY_BYTES))
    await fh.sync()
  } finally {
    await fh.close()
  }
  await fsyncDir(dirname(path))
}

/**
 * Reads a master key file: exactly 32 bytes, and readable by its owner only (like ssh's private
 * keys); anything else is ERR_KBS_STORE_MASTER_KEY_INVALID. Messages never include key bytes.
 */
export async function readMasterKeyFile(path: string): Promise<Buffer> {
  let fh
  try {
    fh = await open(path, 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new CofferError(
      'ERR_KBS_STORE_MASTER_KEY_INVALID',
      code === 'ENOENT'
        ? `master key file ${path} does not exist: create it with "coffer kbs master-key --out ${path}" and keep a copy apart from the store`
        : `cannot read master key file ${path}: ${code}`,
      {
        cause: err,
      },
    )
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw invalid(path, 'is not a regular file')
    if ((st.mode & 0o077) !== 0) throw invalid(path, 'is accessible by group or others (chmod 600)')
    if (st.size !== MASTER_KEY_BYTES) throw invalid(path, `must hold exactly ${MASTER_KEY_BYTES} bytes`)
    const key = Buffer.alloc(MASTER_KEY_BYTES)
    const { bytesRead } = await fh.read(key, 0, MASTER_KEY_BYTES, 0)
    if (bytesRead !== MASTER_KEY_BYTES) throw invalid(path, `must hold exactly ${MASTER_KEY_BYTES} bytes`)
    return key
  } finally {
    await fh.close()
  }
}

function invalid(path: string, why: string): CofferError {
  return new CofferError('ERR_KBS_STORE_MASTER_KEY_INVALID', `master key file ${path} ${why}`)
}
