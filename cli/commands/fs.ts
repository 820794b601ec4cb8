import { mkdir } from 'node:fs/promises'
import { fsckVolume } from '../../lib/storage/fsck.js'
import { changePassphrase, createVolume, openVolume, volumeInfo } from '../../lib/storage/open-volume.js'
import { readPassphraseFile } from '../../lib/storage/passphrase-file.js'
import { CofferError } from '../../lib/util/errors.js'
import { intFlag } from '../flags.js'
import { humanBytes } from '../progress.js'
import type { CommandContext } from '../run.js'

/** gocryptfs's -scryptn: log2 of scrypt's N (10..28; 16 by default). */
function scryptLogN(opts: Record<string, unknown>): number | undefined {
  return opts.scryptn === undefined ? undefined : intFlag(opts.scryptn, '--scryptn', 10, 28)
}

function required(opts: Record<string, unknown>, key: string, flag: string): string {
  const v = opts[key]
  if (typeof v !== 'string' || v === '') throw new CofferError('ERR_USAGE', `${flag} is required`)
  return v
}

/**
 * The passphrase of a new volume: a file, or a KBS resource (`--key kbs:///…`, after attestation),
 * the same one `coffer mount --volume … --key` fetches later. See docs/storage.md for why the
 * resource is a passphrase rather than a raw master key.
 */
async function initPassphrase(opts: Record<string, unknown>, ctx: CommandContext): Promise<Buffer> {
  const file = opts.passphraseFile as string | undefined
  const uri = opts.key as string | undefined
  if ((file === undefined) === (uri === undefined))
    throw new CofferError('ERR_USAGE', 'pass exactly one of --passphrase-file and --key kbs:///…')
  if (file !== undefined) return readPassphraseFile(file)
  return (await import('./mount.js')).kbsPassphrase(uri!, opts, ctx)
}

/** `coffer fs init BACKING (--passphrase-file F | --key kbs:///…) [--scryptn N]`. */
export async function fsInitCommand(
  backing: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const passphrase = await initPassphrase(opts, ctx)
  const logN = scryptLogN(opts)
  await mkdir(backing, { recursive: true })
  const vol = await createVolume(backing, passphrase, logN === undefined ? {} : { scryptLogN: logN })
  vol.close()
  passphrase.fill(0)
  const info = await volumeInfo(backing)
  ctx.emit({ backing, ...info })
  // Unlike gocryptfs -init, no master key is printed: it exists only wrapped in gocryptfs.conf.
  ctx.say(
    `Created a gocryptfs v2 volume in ${backing} (${info.featureFlags.join(' ')}, scrypt N=${info.scrypt.N}).`,
  )
  ctx.say(`Mount it with: gocryptfs -passfile PASSFILE ${backing} MOUNTPOINT`)
}

/** `coffer fs info BACKING`: like `gocryptfs -info`, no passphrase needed. */
export async function fsInfoCommand(
  backing: string,
  _opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const info = await volumeInfo(backing)
  ctx.emit({ backing, ...info })
  ctx.say(`Creator:       ${info.creator}`)
  ctx.say(`Version:       ${info.version}`)
  ctx.say(`FeatureFlags:  ${info.featureFlags.join(' ')}`)
  ctx.say(
    `ScryptObject:  Salt=${info.scrypt.saltBytes}B N=${info.scrypt.N} R=${info.scrypt.R} P=${info.scrypt.P} KeyLen=${info.scrypt.KeyLen}`,
  )
  ctx.say(`LongNameMax:   ${info.longNameMax}`)
  ctx.say('Contents:      AES-256-GCM, 4096-byte blocks; names: EME')
}

/** `coffer fs fsck BACKING --passphrase-file F`: exit 9 if anything fails to authenticate. */
export async function fsFsckCommand(
  backing: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const passphrase = await readPassphraseFile(required(opts, 'passphraseFile', '--passphrase-file'))
  const vol = await openVolume(backing, passphrase)
  passphrase.fill(0)
  let report
  try {
    report = await fsckVolume(vol, { signal: ctx.signal })
  } finally {
    vol.close()
  }
  ctx.emit({ backing, ...report })
  for (const p of report.problems) ctx.say(`${p.path}: ${p.problem}`)
  ctx.say(
    `fsck: ${report.dirs} directories, ${report.files} files, ${report.symlinks} symlinks, ${humanBytes(report.bytes)} checked`,
  )
  if (report.problems.length)
    throw new CofferError(
      'ERR_STORAGE_FSCK_FAILED',
      `fsck: ${report.problems.length} problem(s) found in ${backing}`,
    )
  ctx.say('fsck: no problems found')
}

/** `coffer fs passwd BACKING --passphrase-file OLD --new-passphrase-file NEW [--scryptn N]`. */
export async function fsPasswdCommand(
  backing: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const oldPass = await readPassphraseFile(required(opts, 'passphraseFile', '--passphrase-file'))
  const newPass = await readPassphraseFile(required(opts, 'newPassphraseFile', '--new-passphrase-file'))
  const logN = scryptLogN(opts)
  await changePassphrase(backing, oldPass, newPass, logN === undefined ? {} : { scryptLogN: logN })
  oldPass.fill(0)
  newPass.fill(0)
  ctx.emit({ backing, changed: true })
  ctx.say(`Passphrase of ${backing} changed.`)
}
