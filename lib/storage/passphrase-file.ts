import { CofferError } from '../util/errors.js'
import { readOptionalFileLimited } from '../util/io.js'
import { MAX_PASSPHRASE_FILE_BYTES } from '../util/limits.js'

/**
 * Reads a passphrase the way `gocryptfs -passfile` does: the first line of the file, without its
 * newline, so the same file works for both tools. Empty is refused.
 */
export async function readPassphraseFile(path: string): Promise<Buffer> {
  const content = await readOptionalFileLimited(
    path,
    MAX_PASSPHRASE_FILE_BYTES,
    'passphrase file',
    'ERR_INVALID_ARGUMENT',
  )
  if (content === undefined) throw new CofferError('ERR_NOT_FOUND', `passphrase file ${path} does not exist`)
  const nl = content.indexOf(0x0a)
  const first = nl === -1 ? content : content.subarray(0, nl)
  if (first.length === 0)
    throw new CofferError('ERR_STORAGE_PASSPHRASE_EMPTY', `passphrase file ${path} is empty`)
  return Buffer.from(first)
}
