import { parseImageName } from '../../lib/oci/image-name.js'
import { evaluate } from '../../lib/sign/evaluate.js'
import { openSignedImage } from '../../lib/sign/image-signatures.js'
import { MAX_KEY_FILE_BYTES } from '../../lib/sign/limits.js'
import { loadPolicy, type Policy } from '../../lib/sign/policy.js'
import { CofferError } from '../../lib/util/errors.js'
import type { CommandContext } from '../run.js'
import { readFlagFile, signatureAccess } from '../sign-flags.js'

/**
 * `coffer verify REF --policy policy.json`: is the image allowed, as `skopeo copy --policy` would decide?
 * `coffer verify REF --key KEY`: a one-requirement policy. A PEM public key means a cosign signature
 * of the same repository (`sigstoreSigned`, matchRepository, as cosign payloads carry no tag); an
 * OpenPGP keyring means a simple signature for exactly this reference (`signedBy`).
 * Exit 0 only when the image is accepted; a refusal exits 7 (ERR_SIGN_POLICY_DENIED).
 */
export async function verifyCommand(
  image: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const name = parseImageName(image)
  const keyPath = opts.key as string | undefined
  if (keyPath !== undefined && opts.policy !== undefined)
    throw new CofferError('ERR_USAGE', 'give --key or --policy, not both')
  let policy: Policy
  let cosign = false
  if (keyPath !== undefined) {
    const data = await readFlagFile(keyPath, '--key', MAX_KEY_FILE_BYTES)
    cosign = data.toString('latin1').trimStart().startsWith('-----BEGIN PUBLIC KEY-----')
    policy = {
      default: [
        cosign
          ? { type: 'sigstoreSigned', keyData: data, signedIdentity: { type: 'matchRepository' } }
          : { type: 'signedBy', keyType: 'GPGKeys', keyData: data },
      ],
    }
  } else {
    policy = await loadPolicy(opts.policy as string | undefined)
  }
  const signed = await openSignedImage(name, await signatureAccess(opts, cosign), ctx)
  try {
    const result = await evaluate(policy, name, signed.manifest.bytes, signed.signatures, {
      signal: ctx.signal,
    })
    ctx.emit({ result: { image, manifestDigest: signed.manifest.digest, ...result } })
    ctx.say(`${image}: accepted (${result.scope}), manifest ${signed.manifest.digest}`)
    for (const r of result.requirements) {
      for (const s of r.signatures ?? [])
        ctx.say(`  ${r.type}: ${s.kind} signature by ${s.signer} for ${s.dockerReference}`)
    }
  } finally {
    await signed.close()
  }
}
