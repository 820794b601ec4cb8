import { readFile } from 'node:fs/promises'
import { loadRegistriesD } from '../lib/sign/registries-d.js'
import type { SignatureAccess } from '../lib/sign/image-signatures.js'
import { CofferError } from '../lib/util/errors.js'
import { readOptionalFileLimited } from '../lib/util/io.js'
import { registryAccess } from './flags.js'

/** Registry access plus registries.d (`--registries.d DIR`, as skopeo's global flag). */
export async function signatureAccess(
  opts: Record<string, unknown>,
  force = false,
): Promise<SignatureAccess> {
  const dir = opts['registries.d'] as string | undefined
  return {
    access: await registryAccess(opts, ''),
    registriesD: await loadRegistriesD(dir),
    ...(force ? { forceSigstoreAttachments: true } : {}),
  }
}

/** A key or passphrase file; missing is a usage error naming the flag. */
export async function readFlagFile(path: string, flag: string, limit: number): Promise<Buffer> {
  const data = await readOptionalFileLimited(path, limit, `${flag} ${path}`, 'ERR_SIGN_KEY_INVALID')
  if (!data) throw new CofferError('ERR_USAGE', `${flag}: ${path} does not exist`)
  return data
}

/** A passphrase file's first line (skopeo `--sign-passphrase-file` strips the trailing newline). */
export async function readPassphraseFile(path: string): Promise<string> {
  const text = (await readFile(path, 'utf8').catch(() => {
    throw new CofferError('ERR_USAGE', `cannot read passphrase file ${path}`)
  })) as string
  return text.replace(/\r?\n$/, '')
}

/**
 * The cosign key password: `COSIGN_PASSWORD` if set (even empty, as cosign), else a prompt on the
 * terminal without echo. Without a terminal that is a usage error, never a silent empty password.
 */
export async function cosignPassword(confirm: boolean): Promise<string> {
  const env = process.env.COSIGN_PASSWORD
  if (env !== undefined) return env
  if (!process.stdin.isTTY)
    throw new CofferError('ERR_USAGE', 'set COSIGN_PASSWORD (no terminal to ask for the key password)')
  const first = await prompt('Enter password for private key: ')
  if (confirm && (await prompt('Enter password for private key again: ')) !== first)
    throw new CofferError('ERR_USAGE', 'the passwords do not match')
  return first
}

function prompt(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin
    process.stderr.write(question)
    stdin.setRawMode(true)
    stdin.resume()
    let answer = ''
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(undefined)
        if (ch === '\u0003') return done(new CofferError('ERR_CANCELED', 'canceled'))
        if (ch === '\u007f') answer = answer.slice(0, -1)
        else answer += ch
      }
    }
    const done = (err: CofferError | undefined): void => {
      stdin.off('data', onData)
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write('\n')
      if (err) reject(err)
      else resolve(answer)
    }
    stdin.on('data', onData)
  })
}
