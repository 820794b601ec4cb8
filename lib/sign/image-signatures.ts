/**
 * Where an image's signatures live, per transport (c/image `GetSignatures` / `PutSignatures`):
 * - `docker://`: simple-signing blobs in the lookaside store registries.d names, plus, when asked
 *   (`use-sigstore-attachments`, or always for `coffer verify --key`), cosign `.sig` attachments;
 * - `oci:`: none. c/image's OCI layout transport stores no signatures ("Pushing signatures for OCI
 *   images is not supported"), so signing there is refused and a signedBy policy never accepts it.
 */
import type { ImageName } from '../oci/image-name.js'
import type { ManifestDocument } from '../oci/manifest.js'
import type { DockerReference } from '../oci/reference.js'
import { openImageSource } from '../oci/open-image.js'
import { pullEndpoints, pushEndpoint, type RegistryAccess } from '../oci/registry/access.js'
import type { Repository } from '../oci/registry/repository.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { readLookasideSignatures } from './lookaside.js'
import { lookasideBase, usesSigstoreAttachments, type RegistriesD } from './registries-d.js'
import { readSigstoreAttachments } from './sigstore-attachments.js'
import { readSigstoreReferrers } from './sigstore-referrers.js'
import type { Signature, SignatureSource } from './signature.js'

export interface SignatureAccess {
  readonly access: RegistryAccess
  readonly registriesD: RegistriesD
  /** Read `.sig` attachments even if registries.d does not enable them (cosign-style verification). */
  readonly forceSigstoreAttachments?: boolean
  readonly homeDir?: string
}

/** An image's top-level manifest (bytes as fetched) and its signatures, read lazily. */
export interface SignedImage {
  readonly manifest: ManifestDocument
  readonly signatures: SignatureSource
  close(): Promise<void>
}

export async function openSignedImage(
  name: ImageName,
  sa: SignatureAccess,
  o: Io = {},
): Promise<SignedImage> {
  const source = await openImageSource(name, sa.access, o)
  let manifest: ManifestDocument
  try {
    manifest = await source.getManifest(undefined, o)
  } catch (err) {
    await source.close()
    throw err
  }
  if (name.transport === 'oci') {
    return { manifest, signatures: { signatures: async () => [] }, close: () => source.close() }
  }
  const ref = name.ref
  // Signatures come from the origin, the authority for the repository (mirrors hold images, not lookaside paths).
  const endpoints = pullEndpoints(ref, sa.access)
  const origin = endpoints.at(-1)!.repository
  const signatures: SignatureSource = {
    signatures: async (io?: Io) => {
      const out: Signature[] = []
      const base = lookasideBase(sa.registriesD, ref, false, sa.homeDir ? { homeDir: sa.homeDir } : {})
      for (const blob of await readLookasideSignatures(base, ref.repository, manifest.digest, io))
        out.push({ kind: 'simple-signing', blob })
      if (sa.forceSigstoreAttachments || usesSigstoreAttachments(sa.registriesD, ref)) {
        out.push(...(await readSigstoreAttachments(origin, manifest.digest, io)))
        // cosign's OCI 1.1 mode: referrers (API, or the fallback tag on registries without it).
        out.push(...(await readSigstoreReferrers(origin, manifest.digest, io)))
      }
      return out
    },
  }
  return {
    manifest,
    signatures,
    close: async () => {
      await source.close()
      await Promise.all(endpoints.map((e) => e.repository.registry.close()))
    },
  }
}

/** The repository signatures of `name` are pushed to; refuses transports that store none. */
export function signatureRepository(
  name: ImageName,
  access: RegistryAccess,
): { repository: Repository; ref: DockerReference } {
  if (name.transport !== 'docker')
    throw new CofferError(
      'ERR_SIGN_UNSUPPORTED',
      `${name.transport}: images cannot carry signatures (as in skopeo: "Pushing signatures for OCI images is not supported"); push the image to a registry and sign it there`,
    )
  return { repository: pushEndpoint(name.ref, access), ref: name.ref }
}
