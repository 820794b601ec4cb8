import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { DecryptConfig, EncryptConfig } from '../lib/crypt/keywrap.js'
import { parseDecryptionKeyArg } from '../lib/crypt/keys.js'
import { KBS_KEKS, kbsKekEntry } from '../plugins/keywrap/kbs/index.js'
import { parseProviderRecipient } from '../plugins/keywrap/provider/index.js'
import { CofferError } from '../lib/util/errors.js'
import { MAX_CREDENTIALS_FILE_BYTES } from '../lib/util/limits.js'

/**
 * `--encryption-key SCHEME:VALUE` values → an EncryptConfig (ocicrypt `helpers/parse_helpers.go`):
 * `jwe:<public key file>`, `pkcs7:<x509 certificate file>`, `pgp:<OpenPGP public key file>`.
 */
export async function encryptConfigFrom(
  values: readonly string[],
  o: { kek?: string } = {},
): Promise<EncryptConfig> {
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
        ;(ec.x509s ??= []).push(await readKeyFile(rest, '--encryption-key'))
        break
      case 'pgp':
        // coffer takes OpenPGP public key files (armored or binary), not gpg keyring look-ups.
        ;(ec['gpg-pubkeys'] ??= []).push(await readKeyFile(rest, '--encryption-key'))
        break
      case 'provider': {
        const { key, value: params } = parseProviderRecipient(value)
        ;(ec[key] ??= []).push(params)
        break
      }
      case 'kbs':
        ;(ec[KBS_KEKS] ??= []).push(await kbsEntry(value, o.kek, 'encryption'))
        break
      case 'pkcs11':
        throw new CofferError(
          'ERR_CRYPT_UNSUPPORTED',
          `--encryption-key ${scheme}: is not supported yet; use jwe:KEY.pub, pkcs7:CERT.pem or pgp:KEY.asc`,
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

/**
 * `--decryption-key FILE[:PASSWORD|:pass=PW|:file=PWFILE]` values → a DecryptConfig. As ocicrypt
 * does, each file is sorted by what it is: a private key (`privkeys`), an x509 certificate
 * (`x509s`, which pkcs7 needs beside the key), or an OpenPGP secret key (`gpg-privatekeys`).
 */
export async function decryptConfigFrom(
  values: readonly string[],
  o: { kek?: string } = {},
): Promise<DecryptConfig> {
  const dc: DecryptConfig = { privkeys: [], privkeysPasswords: [], x509s: [] }
  for (const value of values) {
    if (value.startsWith('kbs:') || value.startsWith('kbs+')) {
      ;(dc[KBS_KEKS] ??= []).push(await kbsEntry(value, o.kek, 'decryption'))
      continue
    }
    if (value.startsWith('provider:')) {
      // A key provider: only its name and parameters travel, never a key (spec §2.5).
      const { key, value: params } = parseProviderRecipient(value)
      ;(dc[key] ??= []).push(params)
      continue
    }
    const { path, password } = await parseDecryptionKeyArg(value)
    const bytes = await readKeyFile(path, '--decryption-key')
    const passwordBytes = Buffer.from(password ?? '')
    switch (classifyKeyFile(bytes)) {
      case 'certificate':
        dc.x509s!.push(bytes)
        break
      case 'pgp':
        ;(dc['gpg-privatekeys'] ??= []).push(bytes)
        ;(dc['gpg-privatekeys-passwords'] ??= []).push(passwordBytes)
        break
      default:
        dc.privkeys!.push(bytes)
        dc.privkeysPasswords!.push(passwordBytes)
    }
  }
  return dc
}

/** What a key file holds, by its PEM label or DER shape; private keys are the default. */
function classifyKeyFile(bytes: Buffer): 'private' | 'certificate' | 'pgp' {
  const head = bytes.subarray(0, 4096).toString('latin1')
  if (head.includes('-----BEGIN CERTIFICATE-----')) return 'certificate'
  if (head.includes('-----BEGIN PGP ')) return 'pgp'
  if (head.includes('-----BEGIN ')) return 'private'
  // Binary: an x509 certificate parses as one; an OpenPGP packet starts with bit 7 set.
  try {
    new X509Certificate(bytes)
    return 'certificate'
  } catch {
    // not DER x509
  }
  if (bytes.length > 0 && (bytes[0]! & 0x80) !== 0 && (bytes[0]! & 0x3f) >> 2 === 5) return 'pgp' // old-format tag 5: secret key
  if (bytes.length > 0 && bytes[0] === 0xc5) return 'pgp' // new-format tag 5
  return 'private'
}

/**
 * A `kbs:///repo/type/tag` key with its KEK from `--kek FILE` (32 raw bytes, as `coffer keys generate
 * --type aes` writes). At build time the KEK is local and gets registered in the KBS; in the guest,
 * `coffer pull` fetches it from the KBS after attestation instead.
 */
async function kbsEntry(
  uri: string,
  kekFile: string | undefined,
  what: 'encryption' | 'decryption',
): Promise<Uint8Array> {
  if (!kekFile) {
    throw new CofferError(
      'ERR_USAGE',
      what === 'encryption'
        ? `${uri} needs --kek FILE: the 32-byte key-encryption key you will register in the KBS under that URI`
        : `${uri} needs --kek FILE here; inside a TEE, coffer pull fetches the key from the KBS after attestation`,
    )
  }
  return kbsKekEntry(uri, await readKeyFile(kekFile, '--kek'))
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
