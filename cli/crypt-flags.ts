import { readFile } from 'node:fs/promises'
import type { DecryptConfig, EncryptConfig } from '../lib/crypt/keywrap.js'
import { parseDecryptionKeyArg } from '../lib/crypt/keys.js'
import { CofferError } from '../lib/util/errors.js'
import { MAX_CREDENTIALS_FILE_BYTES } from '../lib/util/limits.js'

/**
 * `--encryption-key SCHEME:VALUE` values → an EncryptConfig (ocicrypt `helpers/parse_helpers.go`):
 * `jwe:<public key file>` today; the other schemes come with their wrappers.
 */
export async function encryptConfigFrom(values: readonly string[]): Promise<EncryptConfig> {
  const ec: EncryptConfig = {}
  for (const value of values) {
    const colon = value.indexOf(':')
    const scheme = colon > 0 ? value.slice(0, colon) : ''
    const rest = value.slice(colon + 1)
    switch (scheme) {
      case 'jwe':
        ;(ec.pubkeys ??= []).push(await readKeyFile(rest, '--encryption-key'))
        break
      case 'pkcs7':
      case 'pgp':
      case 'provider':
      case 'pkcs11':
      case 'kbs':
        throw new CofferError(
          'ERR_CRYPT_UNSUPPORTED',
          `--encryption-key ${scheme}: is not supported yet; use jwe:PUBLIC_KEY.pem`,
        )
      default:
        throw new CofferError(
          'ERR_CRYPT_RECIPIENT_INVALID',
          `--encryption-key "${value}": give SCHEME:VALUE, e.g. jwe:./key.pub.pem`,
        )
    }
  }
  return ec
}

/** `--decryption-key FILE[:PASSWORD|:pass=PW|:file=PWFILE]` values → a DecryptConfig. */
export async function decryptConfigFrom(values: readonly string[]): Promise<DecryptConfig> {
  const dc: DecryptConfig = { privkeys: [], privkeysPasswords: [] }
  for (const value of values) {
    if (value.startsWith('provider:'))
      throw new CofferError('ERR_CRYPT_UNSUPPORTED', '--decryption-key provider: is not supported yet')
    const { path, password } = await parseDecryptionKeyArg(value)
    dc.privkeys!.push(await readKeyFile(path, '--decryption-key'))
    dc.privkeysPasswords!.push(Buffer.from(password ?? ''))
  }
  return dc
}

/** skopeo's `--encrypt-layer` (repeatable, comma lists allowed): 0-based, negative from the end. */
export function layerIndexesFrom(values: readonly string[]): number[] | undefined {
  if (values.length === 0) return undefined
  return values.flatMap((v) =>
    v.split(',').map((s) => {
      const n = Number(s.trim())
      if (!Number.isInteger(n))
        throw new CofferError('ERR_USAGE', `--encrypt-layer takes layer indexes like 0,1,-1, not "${s}"`)
      return n
    }),
  )
}

async function readKeyFile(path: string, flag: string): Promise<Buffer> {
  if (!path) throw new CofferError('ERR_USAGE', `${flag} needs a file`)
  try {
    const bytes = await readFile(path)
    if (bytes.length > MAX_CREDENTIALS_FILE_BYTES)
      throw new CofferError('ERR_CRYPT_KEY_INVALID', `${flag} ${path} is too large to be a key`)
    return bytes
  } catch (err) {
    if (err instanceof CofferError) throw err
    throw new CofferError(
      'ERR_NOT_FOUND',
      `${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    )
  }
}
