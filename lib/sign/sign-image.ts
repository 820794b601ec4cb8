/**
 * Signing an image that is already in a registry: the signature covers the **top-level manifest
 * digest** exactly as stored. For an encrypted image that is the manifest naming the encrypted
 * layers, so a guest verifies the signature before it fetches or decrypts anything.
 *
 * - `gpg`: a simple-signing payload (`atomic container signature`, identity = the reference as
 *   given, with its tag) signed as an OpenPGP message and appended to the lookaside store that
 *   registries.d names for writing (`lookaside-staging`, else `lookaside`, else the built-in default);
 * - `cosign`: a cosign payload (identity = the repository without a tag, as cosign writes it)
 *   signed with the cosign key and appended to the `sha256-<hex>.sig` manifest.
 */
import type { KeyObject } from 'node:crypto'
import type { PrivateKey } from 'openpgp'
import { formatImageName, type ImageName } from '../oci/image-name.js'
import { formatDockerReference } from '../oci/reference.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { signCosignPayload } from './cosign-key.js'
import {
  openSignedImage,
  signatureRepository,
  type SignatureAccess,
  type SignedImage,
} from './image-signatures.js'
import { appendLookasideSignature } from './lookaside.js'
import { parseNamed, isNameOnly } from './named-reference.js'
import { buildPayload, COSIGN_SIGNATURE_TYPE, SIMPLE_SIGNING_TYPE } from './payload.js'
import { lookasideBase } from './registries-d.js'
import { SIGSTORE_SIGNATURE_ANNOTATION } from './signature.js'
import { createSimpleSignature } from './simple-signing.js'
import { appendSigstoreAttachment } from './sigstore-attachments.js'
import { attachSigstoreReferrer } from './sigstore-referrers.js'

export type SigningKey =
  { readonly kind: 'gpg'; readonly key: PrivateKey } | { readonly kind: 'cosign'; readonly key: KeyObject }

export interface SignResult {
  readonly manifestDigest: string
  readonly dockerReference: string
  /** `lookaside URL` (gpg) or `repo:sha256-….sig` (cosign). */
  readonly storedAt: string
  /** False if an identical cosign signature was already attached. */
  readonly added: boolean
}

export async function signImage(
  name: ImageName,
  key: SigningKey,
  sa: SignatureAccess,
  o: Io & {
    identity?: string
    creator?: string
    now?: Date
    /** cosign: `legacy` appends to the `.sig` tag; `oci-1-1` pushes an OCI 1.1 referrer (cosign's flag). */
    referrersMode?: 'legacy' | 'oci-1-1'
  } = {},
): Promise<SignResult> {
  // Refuse unsupported transports before any I/O.
  const identity = checkedIdentity(o.identity, key.kind, formatImageName(name))
  const { repository: repo, ref } = signatureRepository(name, sa.access)
  let image: SignedImage | undefined
  try {
    image = await openSignedImage(name, sa, o)
    const digest = image.manifest.digest
    if (key.kind === 'gpg') {
      if (!identity && ref.digest)
        throw new CofferError(
          'ERR_USAGE',
          `${formatImageName(name)} names a digest; pass --sign-identity HOST/REPO:TAG`,
        )
      const dockerReference = identity ?? formatDockerReference(ref)
      const payload = buildPayload(SIMPLE_SIGNING_TYPE, dockerReference, digest, {
        creator: o.creator ?? 'coffer',
        timestamp: Math.floor((o.now ?? new Date()).getTime() / 1000),
      })
      const blob = await createSimpleSignature(payload, key.key)
      const base = lookasideBase(sa.registriesD, ref, true, sa.homeDir ? { homeDir: sa.homeDir } : {})
      const n = await appendLookasideSignature(base, ref.repository, digest, blob)
      return {
        manifestDigest: digest,
        dockerReference,
        storedAt: `${base.href.replace(/\/+$/, '')}/${ref.repository}@${digest.replace(':', '=')}/signature-${n}`,
        added: true,
      }
    }
    const dockerReference = identity ?? `${ref.host}/${ref.repository}`
    const payload = buildPayload(COSIGN_SIGNATURE_TYPE, dockerReference, digest)
    const signature = signCosignPayload(payload, key.key)
    if (o.referrersMode === 'oci-1-1') {
      const subject = { mediaType: image.manifest.mediaType, digest, size: image.manifest.bytes.length }
      const referrer = await attachSigstoreReferrer(
        repo,
        subject,
        payload,
        { [SIGSTORE_SIGNATURE_ANNOTATION]: signature },
        o,
      )
      return {
        manifestDigest: digest,
        dockerReference,
        storedAt: `${ref.host}/${ref.repository}@${referrer}`,
        added: true,
      }
    }
    const added = await appendSigstoreAttachment(
      repo,
      digest,
      payload,
      { [SIGSTORE_SIGNATURE_ANNOTATION]: signature },
      o,
    )
    return {
      manifestDigest: digest,
      dockerReference,
      storedAt: `${ref.host}/${ref.repository}:${digest.replace(':', '-')}.sig`,
      added,
    }
  } finally {
    await image?.close()
    await repo.registry.close()
  }
}

/** `--sign-identity` must be a fully specified docker reference (skopeo); cosign identities may be repositories. */
function checkedIdentity(
  identity: string | undefined,
  kind: SigningKey['kind'],
  image: string,
): string | undefined {
  if (identity === undefined) return undefined
  const parsed = parseNamed(identity)
  if (!parsed || parsed.string !== identity || (kind === 'gpg' && isNameOnly(parsed)))
    throw new CofferError(
      'ERR_USAGE',
      `--sign-identity "${identity}" for ${image} must be a fully specified docker reference (HOST/REPO${kind === 'gpg' ? ':TAG' : '[:TAG]'})`,
    )
  return identity
}
