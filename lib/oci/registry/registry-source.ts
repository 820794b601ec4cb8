import type { Readable } from 'node:stream'
import { CofferError } from '../../util/errors.js'
import { readAllLimited, type Io } from '../../util/io.js'
import { verifyBytes, type Digest } from '../digest.js'
import type { ImageSource } from '../image-transport.js'
import type { ManifestDocument } from '../manifest.js'
import { formatDockerReference, manifestReference, type DockerReference } from '../reference.js'
import type { Descriptor } from '../schemas.js'
import { pullEndpoints, type RegistryAccess, type RepositoryEndpoint } from './access.js'
import type { Repository } from './repository.js'

/**
 * Reads an image from `docker://REF`. The top-level manifest is fetched from the first endpoint
 * that has it (mirrors first); that endpoint then serves every other manifest and blob, and the
 * tag is resolved once, so a tag moved during the copy cannot mix two images.
 */
export async function openRegistrySource(
  ref: DockerReference,
  access: RegistryAccess,
  o: Io = {},
): Promise<ImageSource> {
  const endpoints = pullEndpoints(ref, access)
  const name = `docker://${formatDockerReference(ref)}`
  const errors: string[] = []
  for (const [i, endpoint] of endpoints.entries()) {
    try {
      const top = await endpoint.repository.getManifest(manifestReference(ref), o)
      return new RegistrySource(name, endpoint.repository, top, endpoints)
    } catch (err) {
      const last = i === endpoints.length - 1
      if (last || !endpoint.mirror || (err instanceof CofferError && err.code === 'ERR_CANCELED')) {
        await closeAll(endpoints)
        if (errors.length && err instanceof CofferError) {
          throw new CofferError(err.code, `${err.message} (mirrors tried first: ${errors.join('; ')})`, {
            cause: err,
          })
        }
        throw err
      }
      errors.push(`${endpoint.repository.registry.host}: ${(err as Error).message}`)
    }
  }
  throw new CofferError('ERR_INTERNAL', `no endpoint for ${name}`)
}

async function closeAll(endpoints: RepositoryEndpoint[]): Promise<void> {
  await Promise.all(endpoints.map((e) => e.repository.registry.close()))
}

class RegistrySource implements ImageSource {
  readonly registryLocation: { host: string; repository: string }

  constructor(
    readonly name: string,
    private readonly repo: Repository,
    private readonly top: ManifestDocument,
    private readonly endpoints: RepositoryEndpoint[],
  ) {
    this.registryLocation = { host: repo.registry.host, repository: repo.name }
  }

  async getManifest(digest?: Digest, o?: Io): Promise<ManifestDocument> {
    if (!digest || digest === this.top.digest) return this.top
    return this.repo.getManifest(digest, o)
  }

  async getBlob(desc: Descriptor, o: Io & { offset?: number } = {}): Promise<Readable> {
    return this.repo.openBlob(desc, o)
  }

  async getBlobBytes(desc: Descriptor, limit: number, o: Io = {}): Promise<Buffer> {
    if (desc.size > limit)
      throw new CofferError(
        'ERR_TOO_LARGE',
        `blob ${desc.digest} is ${desc.size} bytes, over the ${limit}-byte limit`,
      )
    const bytes = await readAllLimited(this.repo.openBlob(desc, o), limit, `blob ${desc.digest}`)
    verifyBytes(bytes, desc.digest, `blob ${desc.digest}`)
    return bytes
  }

  async close(): Promise<void> {
    await closeAll(this.endpoints)
  }
}
