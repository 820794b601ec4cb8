import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { generateKeyPair } from '../../lib/crypt/keys.js'
import { CofferError } from '../../lib/util/errors.js'
import { intFlag } from '../flags.js'
import type { CommandContext } from '../run.js'

/**
 * `coffer keys generate --type rsa|ec|aes --out PREFIX`: PREFIX.key (0600) and, for key pairs,
 * PREFIX.pub. An aes key is 32 random bytes: a key-encryption key to keep in a KBS.
 */
export async function keysGenerateCommand(opts: Record<string, unknown>, ctx: CommandContext): Promise<void> {
  const type = opts.type as string
  if (type === 'aes') return writeAesKey(opts.out as string, opts.force === true, ctx)
  if (type === 'cosign') return writeCosignKey(opts.out as string, opts.force === true, ctx)
  if (type !== 'rsa' && type !== 'ec')
    throw new CofferError('ERR_USAGE', `--type must be rsa, ec, aes or cosign, not "${type}"`)
  const bits = intFlag(opts.bits, '--bits', 2048, 4096)
  if (![2048, 3072, 4096].includes(bits))
    throw new CofferError('ERR_USAGE', '--bits must be 2048, 3072 or 4096')
  const curve = opts.curve as string
  if (!['P-256', 'P-384', 'P-521'].includes(curve))
    throw new CofferError('ERR_USAGE', '--curve must be P-256, P-384 or P-521')
  const prefix = opts.out as string
  const { privatePem, publicPem } = await generateKeyPair(
    type,
    type === 'rsa' ? { bits } : { curve: curve as 'P-256' | 'P-384' | 'P-521' },
  )
  // 'wx' refuses to overwrite: a lost private key means images nobody can decrypt.
  const flag = opts.force ? 'w' : 'wx'
  try {
    await writeFile(`${prefix}.key`, privatePem, { mode: 0o600, flag })
    await writeFile(`${prefix}.pub`, publicPem, { mode: 0o644, flag })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CofferError(
        'ERR_INVALID_ARGUMENT',
        `${prefix}.key or ${prefix}.pub exists; choose another --out or pass --force`,
      )
    }
    throw err
  }
  ctx.emit({
    privateKey: `${prefix}.key`,
    publicKey: `${prefix}.pub`,
    type,
    ...(type === 'rsa' ? { bits } : { curve }),
  })
  ctx.say(
    `Wrote ${prefix}.key (private, keep it safe) and ${prefix}.pub (give it to whoever encrypts for you)`,
  )
}

async function writeAesKey(prefix: string, force: boolean, ctx: CommandContext): Promise<void> {
  try {
    await writeFile(`${prefix}.key`, randomBytes(32), { mode: 0o600, flag: force ? 'w' : 'wx' })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CofferError(
        'ERR_INVALID_ARGUMENT',
        `${prefix}.key exists; choose another --out or pass --force`,
      )
    }
    throw err
  }
  ctx.emit({ key: `${prefix}.key`, type: 'aes', bits: 256 })
  ctx.say(`Wrote ${prefix}.key (32 random bytes, AES-256; keep it in your KBS, not in the image)`)
}

/** cosign's key pair: PREFIX.key (`ENCRYPTED SIGSTORE PRIVATE KEY`) and PREFIX.pub (PKIX PEM). */
async function writeCosignKey(prefix: string, force: boolean, ctx: CommandContext): Promise<void> {
  const { cosignPassword } = await import('../sign-flags.js')
  const { generateCosignKeyPair } = await import('../../lib/sign/cosign-key.js')
  const { privatePem, publicPem } = await generateCosignKeyPair(await cosignPassword(true))
  const flag = force ? 'w' : 'wx'
  try {
    await writeFile(`${prefix}.key`, privatePem, { mode: 0o600, flag })
    await writeFile(`${prefix}.pub`, publicPem, { mode: 0o644, flag })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CofferError(
        'ERR_INVALID_ARGUMENT',
        `${prefix}.key or ${prefix}.pub exists; choose another --out or pass --force`,
      )
    }
    throw err
  }
  ctx.emit({ privateKey: `${prefix}.key`, publicKey: `${prefix}.pub`, type: 'cosign', curve: 'P-256' })
  ctx.say(`Wrote ${prefix}.key (cosign private key, encrypted) and ${prefix}.pub (for coffer verify --key)`)
}
