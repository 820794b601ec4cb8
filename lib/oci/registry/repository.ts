import type { Readable } from 'node:stream'
import { CofferError } from '../../util/errors.js'
import { readAllLimited, type Io } from '../../util/io.js'
import { MAX_MANIFEST_BYTES, MAX_TAG_LIST_BYTES } from '../../util/limits.js'
import { isDigest, parseDigest, type Digest } from '../digest.js'
import { parseManifestDocument, type ManifestDocument } from '../manifest.js'
import { MANIFEST_ACCEPT, MediaType } from '../media-types.js'
import { describeIssues, indexSchema, type Descriptor } from '../schemas.js'
import { resumableBlobStream } from './blob-download.js'
import { uploadBlob, type UploadOptions } from './blob-upload.js'
import { discard, header, type HttpResponse } from './http.js'
import type { Registry } from './registry.js'

/**
 * One repository on a registry: the distribution-spec endpoints coffer uses. Every method checks
 * what it gets: manifests against digests and the size limit, blobs through the caller's verifier.
 */
export class Repository {
  constructor(
    readonly registry: Registry,
    /** The path inside the registry, e.g. `library/alpine`. */
    readonly name: string,
  ) {}

  get pullScope(): string {
    return `repository:${this.name}:pull`
  }

  get pushScopes(): string[] {
    return [`repository:${this.name}:pull,push`]
  }

  private get where(): string {
    return `${this.registry.host}/${this.name}`
  }

  /** GET a manifest by tag or digest, verified against the digest when pulled by one. */
  async getManifest(reference: string, o: Io = {}): Promise<ManifestDocument> {
    const res = await this.registry.request({
      method: 'GET',
      path: `/v2/${this.name}/manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
      scopes: [this.pullScope],
      ...o,
    })
    if (res.status === 404) {
      await discard(res)
      throw new CofferError('ERR_REGISTRY_NOT_FOUND', `manifest ${reference} not found in ${this.where}`)
    }
    if (res.status !== 200)
      throw await this.registry.fail(res, `fetching manifest ${reference} from ${this.where}`)
    const length = Number(header(res, 'content-length') ?? NaN)
    if (length > MAX_MANIFEST_BYTES) {
      res.body.destroy()
      throw new CofferError(
        'ERR_OCI_MANIFEST_TOO_LARGE',
        `manifest ${reference} in ${this.where} is ${length} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`,
      )
    }
    const bytes = await readAllLimited(
      res.body,
      MAX_MANIFEST_BYTES,
      `manifest ${reference} in ${this.where}`,
      'ERR_OCI_MANIFEST_TOO_LARGE',
    )
    const expectedDigest = isDigest(reference) ? reference : undefined
    const doc = parseManifestDocument(bytes, {
      declaredType: header(res, 'content-type'),
      ...(expectedDigest ? { expectedDigest } : {}),
      source: `manifest ${reference} in ${this.where}`,
    })
    // A registry that names a different digest than the bytes it sent is lying about one of them.
    const claimed = header(res, 'docker-content-digest')
    if (
      claimed &&
      isDigest(claimed) &&
      parseDigest(claimed).algorithm === 'sha256' &&
      doc.digest.startsWith('sha256:') &&
      claimed !== doc.digest
    ) {
      throw new CofferError(
        'ERR_OCI_DIGEST_MISMATCH',
        `manifest ${reference} in ${this.where}: the registry says ${claimed} but the content is ${doc.digest}`,
      )
    }
    return doc
  }

  /** HEAD a manifest: its descriptor, or undefined if absent. */
  async headManifest(reference: string, o: Io = {}): Promise<Descriptor | undefined> {
    const res = await this.registry.request({
      method: 'HEAD',
      path: `/v2/${this.name}/manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
      scopes: [this.pullScope],
      ...o,
    })
    await discard(res)
    if (res.status === 404) return undefined
    if (res.status !== 200)
      throw await this.registry.fail(res, `checking manifest ${reference} in ${this.where}`)
    const digest = header(res, 'docker-content-digest')
    const size = Number(header(res, 'content-length'))
    if (!digest || !isDigest(digest) || !Number.isSafeInteger(size)) return undefined
    return { mediaType: header(res, 'content-type') ?? '', digest, size }
  }

  /**
   * PUT a manifest under a tag or its digest. Returns the response headers that matter:
   * `OCI-Subject` tells whether the registry indexed a `subject` for the referrers API.
   */
  async putManifest(
    reference: string,
    doc: ManifestDocument,
    o: Io = {},
  ): Promise<{ subjectIndexed: boolean }> {
    const res = await this.registry.request({
      method: 'PUT',
      path: `/v2/${this.name}/manifests/${reference}`,
      headers: { 'content-type': doc.mediaType },
      body: doc.bytes,
      scopes: this.pushScopes,
      ...o,
    })
    if (res.status !== 201 && res.status !== 200)
      throw await this.registry.fail(res, `pushing manifest ${reference} to ${this.where}`)
    await discard(res)
    const stored = header(res, 'docker-content-digest')
    if (stored && stored !== doc.digest && stored.startsWith('sha256:') && doc.digest.startsWith('sha256:')) {
      throw new CofferError(
        'ERR_OCI_DIGEST_MISMATCH',
        `${this.where} stored manifest ${reference} as ${stored}, not ${doc.digest}`,
      )
    }
    return { subjectIndexed: header(res, 'oci-subject') !== undefined }
  }

  async deleteManifest(digest: Digest, o: Io = {}): Promise<void> {
    const res = await this.registry.request({
      method: 'DELETE',
      path: `/v2/${this.name}/manifests/${digest}`,
      scopes: [`repository:${this.name}:delete`, ...this.pushScopes],
      ...o,
    })
    if (res.status !== 202 && res.status !== 200)
      throw await this.registry.fail(res, `deleting manifest ${digest} in ${this.where}`)
    await discard(res)
  }

  /** HEAD a blob; a size that differs from the descriptor's counts as absent. */
  async hasBlob(desc: Pick<Descriptor, 'digest' | 'size'>, o: Io = {}): Promise<boolean> {
    const res = await this.registry.request({
      method: 'HEAD',
      path: `/v2/${this.name}/blobs/${desc.digest}`,
      scopes: [this.pullScope],
      ...o,
    })
    await discard(res)
    if (res.status === 404) return false
    if (res.status !== 200)
      throw await this.registry.fail(res, `checking blob ${desc.digest} in ${this.where}`)
    const length = header(res, 'content-length')
    return length === undefined || Number(length) === desc.size
  }

  /** The blob's bytes from `offset`, resuming after dropped connections; unverified (see ImageSource). */
  openBlob(desc: Descriptor, o: Io & { offset?: number } = {}): Readable {
    return resumableBlobStream(
      desc,
      o.offset ?? 0,
      {
        host: this.registry.host,
        fetch: (offset, io) =>
          this.registry.request({
            method: 'GET',
            path: `/v2/${this.name}/blobs/${desc.digest}`,
            headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
            scopes: [this.pullScope],
            ...io,
          }),
        fail: async (res, what) => {
          if (res.status === 404) {
            await discard(res)
            return new CofferError('ERR_REGISTRY_NOT_FOUND', `blob ${desc.digest} not found in ${this.where}`)
          }
          return this.registry.fail(res, `${what} from ${this.where}`)
        },
        pause: (attempt, io) => this.registry.pause(attempt, io),
      },
      o,
    )
  }

  /** Uploads a blob (see `blob-upload.ts`); the registry checks the digest before accepting it. */
  uploadBlob(
    desc: Descriptor,
    open: (offset: number) => Promise<Readable>,
    o: Io & UploadOptions = {},
  ): Promise<void> {
    return uploadBlob(this, desc, open, o)
  }

  /**
   * Cross-repository mount (`POST /blobs/uploads/?mount=&from=`). True if the registry linked the
   * blob; a 202 means it started an upload instead, which we cancel.
   */
  async mountBlob(desc: Descriptor, from: string, o: Io = {}): Promise<boolean> {
    const query = new URLSearchParams({ mount: desc.digest, from })
    const res = await this.registry.request({
      method: 'POST',
      path: `/v2/${this.name}/blobs/uploads/?${query}`,
      headers: { 'content-length': '0' },
      scopes: [...this.pushScopes, `repository:${from}:pull`],
      idempotent: false,
      ...o,
    })
    await discard(res)
    if (res.status === 201) return true
    const location = header(res, 'location')
    if (res.status === 202 && location) {
      const cancel = await this.registry
        .request({
          method: 'DELETE',
          path: new URL(location, await this.registry.baseUrl()),
          scopes: this.pushScopes,
          ...o,
        })
        .catch(() => undefined)
      if (cancel) await discard(cancel)
    }
    return false
  }

  /** All tags, following `Link: <…>; rel="next"` pages. */
  async listTags(o: Io = {}): Promise<string[]> {
    const tags: string[] = []
    let path: string | URL = `/v2/${this.name}/tags/list?n=1000`
    for (let page = 0; page < 10_000; page++) {
      const res: HttpResponse = await this.registry.request({
        method: 'GET',
        path,
        scopes: [this.pullScope],
        ...o,
      })
      if (res.status === 404) {
        await discard(res)
        throw new CofferError('ERR_REGISTRY_NOT_FOUND', `repository ${this.where} not found`)
      }
      if (res.status !== 200) throw await this.registry.fail(res, `listing tags of ${this.where}`)
      const body = await readAllLimited(res.body, MAX_TAG_LIST_BYTES, `tag list of ${this.where}`)
      let parsed: { tags?: unknown }
      try {
        parsed = JSON.parse(body.toString('utf8')) as { tags?: unknown }
      } catch {
        throw new CofferError('ERR_REGISTRY_PROTOCOL', `${this.where}: the tag list is not JSON`)
      }
      if (parsed.tags !== null && parsed.tags !== undefined) {
        if (!Array.isArray(parsed.tags) || !parsed.tags.every((t) => typeof t === 'string')) {
          throw new CofferError('ERR_REGISTRY_PROTOCOL', `${this.where}: the tag list is malformed`)
        }
        tags.push(...(parsed.tags as string[]))
      }
      const next = nextLink(header(res, 'link'))
      if (!next) return tags
      path = new URL(next, await this.registry.baseUrl())
    }
    throw new CofferError('ERR_REGISTRY_PROTOCOL', `${this.where}: the tag list never ends`)
  }

  /**
   * Manifests whose `subject` is `digest`: the referrers API, or, where the registry has none
   * (404), the fallback tag `<alg>-<hex>` holding an index (distribution-spec "Referrers Tag Schema").
   */
  async listReferrers(digest: Digest, o: Io & { artifactType?: string } = {}): Promise<Descriptor[]> {
    const out: Descriptor[] = []
    const query = o.artifactType ? `?${new URLSearchParams({ artifactType: o.artifactType })}` : ''
    let path: string | URL = `/v2/${this.name}/referrers/${digest}${query}`
    for (let page = 0; page < 1000; page++) {
      const res: HttpResponse = await this.registry.request({
        method: 'GET',
        path,
        headers: { accept: MediaType.OciIndex },
        scopes: [this.pullScope],
        ...o,
      })
      if (res.status === 404 && page === 0) {
        await discard(res)
        return this.referrersFromFallbackTag(digest, o)
      }
      if (res.status !== 200)
        throw await this.registry.fail(res, `listing referrers of ${digest} in ${this.where}`)
      const body = await readAllLimited(
        res.body,
        MAX_MANIFEST_BYTES,
        `referrers of ${digest}`,
        'ERR_OCI_MANIFEST_TOO_LARGE',
      )
      const parsed = indexSchema.safeParse(safeJson(body))
      if (!parsed.success)
        throw new CofferError(
          'ERR_REGISTRY_PROTOCOL',
          `${this.where}: bad referrers index: ${describeIssues(parsed.error)}`,
        )
      out.push(...filterByArtifactType(parsed.data.manifests, o.artifactType))
      const next = nextLink(header(res, 'link'))
      if (!next) return out
      path = new URL(next, await this.registry.baseUrl())
    }
    return out
  }

  private async referrersFromFallbackTag(
    digest: Digest,
    o: Io & { artifactType?: string },
  ): Promise<Descriptor[]> {
    try {
      const doc = await this.getManifest(referrersTag(digest), o)
      return doc.kind === 'index' ? filterByArtifactType(doc.index.manifests, o.artifactType) : []
    } catch (err) {
      if (err instanceof CofferError && err.code === 'ERR_REGISTRY_NOT_FOUND') return []
      throw err
    }
  }
}

/** The referrers fallback tag: `<alg>-<hex>`, truncated to 32 and 64 characters. */
export function referrersTag(digest: Digest): string {
  const { algorithm, encoded } = parseDigest(digest)
  return `${algorithm.slice(0, 32)}-${encoded.slice(0, 64)}`
}

function filterByArtifactType(manifests: Descriptor[], artifactType: string | undefined): Descriptor[] {
  return artifactType ? manifests.filter((m) => m.artifactType === artifactType) : manifests
}

function nextLink(link: string | undefined): string | undefined {
  if (!link) return undefined
  for (const part of link.split(',')) {
    const m = /<([^>]*)>\s*;\s*rel="?next"?/i.exec(part)
    if (m) return m[1]
  }
  return undefined
}

function safeJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
}
