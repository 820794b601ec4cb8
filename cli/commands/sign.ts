import { parseImageName } from '../../lib/oci/image-name.js'
import { decryptCosignPrivateKey } from '../../lib/sign/cosign-key.js'
import { MAX_KEY_FILE_BYTES } from '../../lib/sign/limits.js'
import { signImage, type SigningKey } from '../../lib/sign/sign-image.js'
import { readSigningKey } from '../../lib/sign/simple-signing.js'
import { CofferError } from '../../lib/util/errors.js'
import type { CommandContext } from '../run.js'
import { cosignPassword, readFlagFile, readPassphraseFile, signatureAccess } from '../sign-flags.js'

/**
 * `coffer sign docker://REF --key cosign.key` (cosign `.sig` attachment) or
 * `coffer sign docker://REF --sign-by-gpg KEY.asc` (simple signing, in the registries.d lookaside).
 */
export async function signCommand(
  image: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const name = parseImageName(image)
  const cosignKey = opts.key as string | undefined
  const gpgKey = opts.signByGpg as string | undefined
  if ((cosignKey === undefined) === (gpgKey === undefined))
    throw new CofferError('ERR_USAGE', 'give exactly one of --key COSIGN.key or --sign-by-gpg KEYFILE')
  let key: SigningKey
  if (cosignKey !== undefined) {
    const pem = (await readFlagFile(cosignKey, '--key', MAX_KEY_FILE_BYTES)).toString('utf8')
    key = { kind: 'cosign', key: await decryptCosignPrivateKey(pem, await cosignPassword(false)) }
  } else {
    const data = await readFlagFile(gpgKey!, '--sign-by-gpg', MAX_KEY_FILE_BYTES)
    const passphrase = opts.signPassphraseFile
      ? await readPassphraseFile(opts.signPassphraseFile as string)
      : undefined
    key = { kind: 'gpg', key: await readSigningKey(data, passphrase, gpgKey!) }
  }
  const result = await signImage(name, key, await signatureAccess(opts), {
    ...(opts.signIdentity ? { identity: opts.signIdentity as string } : {}),
    referrersMode: opts.registryReferrersMode === 'oci-1-1' ? 'oci-1-1' : 'legacy',
    signal: ctx.signal,
  })
  ctx.emit({ result: { ...result, kind: key.kind } })
  ctx.say(
    `${result.added ? 'Signed' : 'Already signed'} ${result.manifestDigest} as ${result.dockerReference}\n  stored at ${result.storedAt}`,
  )
}
