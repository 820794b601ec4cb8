import { Readable } from 'node:stream'
import { CofferError } from '../../util/errors.js'
import type { Io } from '../../util/io.js'
import { KiB, MiB } from '../../util/limits.js'
import type { Descriptor } from '../schemas.js'
import { discard, header, type HttpResponse } from './http.js'
import { isRetryableNetworkError, isRetryableStatus } from './retry.js'
import type { Repository } from './repository.js'

export interface UploadOptions {
  /**
   * Send the blob in PATCH chunks of this many bytes (distribution-spec "chunked upload").
   * Without it, small blobs go in one PUT and larger ones in one streamed PATCH, which is what
   * containers/image does and the fastest on a good link; either way a dropped connection resumes
   * from the offset the registry reports.
   */
  chunkSize?: number
}

/** Blobs up to this size go up in the closing PUT itself (POST-then-PUT monolithic upload). */
const MONOLITHIC_MAX = 256 * KiB
/** Chunks below this are refused: a tiny chunk size would mean millions of requests. */
export const MIN_CHUNK_SIZE = 64 * KiB
export const MAX_CHUNK_SIZE = 4096 * MiB
const MAX_STALLED_RESUMES = 5
const MAX_SESSIONS = 3

/**
 * Uploads `desc` to `repo`: POST a session, send the bytes, PUT `?digest=`. The registry
 * computes the digest itself and refuses a mismatch (DIGEST_INVALID), so nothing unverified
 * becomes a blob there. A dropped PATCH resumes from the registry's `Range`; a lost session
 * (404) starts over, up to three times.
 */
export async function uploadBlob(
  repo: Repository,
  desc: Descriptor,
  open: (offset: number) => Promise<Readable>,
  o: Io & UploadOptions = {},
): Promise<void> {
  if (o.chunkSize !== undefined && (o.chunkSize < MIN_CHUNK_SIZE || o.chunkSize > MAX_CHUNK_SIZE)) {
    throw new CofferError(
      'ERR_INVALID_ARGUMENT',
      `upload chunk size must be between ${MIN_CHUNK_SIZE} and ${MAX_CHUNK_SIZE} bytes`,
    )
  }
  let lastError: unknown
  for (let session = 0; session < MAX_SESSIONS; session++) {
    try {
      await uploadInSession(repo, desc, open, o)
      return
    } catch (err) {
      lastError = err
      if (!(err instanceof SessionLost) && !isTransient(err)) throw err
      if (o.signal?.aborted) throw err
      await repo.registry.pause(session + 1, o)
    }
  }
  throw lastError instanceof SessionLost
    ? new CofferError(
        'ERR_REGISTRY_PROTOCOL',
        `${repo.registry.host}/${repo.name}: the upload of ${desc.digest} kept failing`,
      )
    : lastError
}

/** The registry forgot the upload session: start a new one. */
class SessionLost extends Error {}

/** A 5xx/429 on a non-idempotent upload step: as good as a dropped connection. */
class TransientStatus extends Error {}

/** Worth another try: a dropped connection or a transient status. */
function isTransient(err: unknown): boolean {
  return err instanceof TransientStatus || isRetryableNetworkError(err)
}

async function uploadInSession(
  repo: Repository,
  desc: Descriptor,
  open: (offset: number) => Promise<Readable>,
  o: Io & UploadOptions,
): Promise<void> {
  const base = await repo.registry.baseUrl(o)
  const started = await repo.registry.request({
    method: 'POST',
    path: `/v2/${repo.name}/blobs/uploads/`,
    headers: { 'content-length': '0' },
    scopes: repo.pushScopes,
    idempotent: false,
    ...o,
  })
  const firstLocation = started.headers.location
  await expectAnswer(repo, started, 202, `starting the upload of ${desc.digest}`)
  let location = locationOf(firstLocation, base, repo)

  if (o.chunkSize === undefined && desc.size <= MONOLITHIC_MAX) {
    await finish(repo, desc, location, () => open(0), desc.size, o)
    return
  }

  let offset = 0
  let stalled = 0
  while (offset < desc.size) {
    const length = Math.min(o.chunkSize ?? desc.size, desc.size - offset)
    try {
      const res = await repo.registry.request({
        method: 'PATCH',
        path: location,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${offset + length - 1}`,
          'content-length': String(length),
        },
        body: async () => exactly(await open(offset), length, desc),
        scopes: repo.pushScopes,
        idempotent: false,
        ...o,
      })
      await expectAnswer(repo, res, 202, `uploading ${desc.digest}`)
      location = locationOf(res.headers.location ?? location.toString(), base, repo)
      offset += length
      stalled = 0
    } catch (err) {
      if (
        err instanceof SessionLost ||
        !isTransient(err) ||
        o.signal?.aborted ||
        ++stalled > MAX_STALLED_RESUMES
      )
        throw err
      await repo.registry.pause(stalled, o)
      ;({ offset, location } = await uploadStatus(repo, location, base, o))
    }
  }
  await finish(repo, desc, location, undefined, 0, o)
}

/**
 * Checks an upload step's answer: `expected` goes on; 404 means the session is gone; a 5xx/429
 * is transient; anything else is the registry's coded error. The body is always drained.
 */
async function expectAnswer(
  repo: Repository,
  res: HttpResponse,
  expected: number,
  what: string,
): Promise<void> {
  if (res.status === expected) return discard(res)
  if (res.status === 404 || isRetryableStatus(res.status)) {
    await discard(res)
    throw res.status === 404 ? new SessionLost() : new TransientStatus(`HTTP ${res.status}`)
  }
  throw await repo.registry.fail(res, what)
}

/** PUT `?digest=`, with the last bytes or none. */
async function finish(
  repo: Repository,
  desc: Descriptor,
  location: URL,
  body: (() => Promise<Readable>) | undefined,
  length: number,
  o: Io,
): Promise<void> {
  const url = new URL(location)
  url.searchParams.set('digest', desc.digest)
  const res = await repo.registry.request({
    method: 'PUT',
    path: url,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
    ...(body ? { body: async () => exactly(await body(), length, desc) } : {}),
    scopes: repo.pushScopes,
    idempotent: false,
    ...o,
  })
  await expectAnswer(repo, res, 201, `finishing the upload of ${desc.digest}`)
}

/** `GET <location>`: how much the registry kept (`Range: 0-<last>`), and where to go on. */
async function uploadStatus(
  repo: Repository,
  location: URL,
  base: URL,
  o: Io,
): Promise<{ offset: number; location: URL }> {
  const res = await repo.registry.request({ method: 'GET', path: location, scopes: repo.pushScopes, ...o })
  await discard(res)
  if (res.status === 404) throw new SessionLost()
  if (res.status !== 204) throw await repo.registry.fail(res, 'reading the upload status')
  const last = /^(?:bytes=)?0-(\d+)$/.exec(header(res, 'range') ?? '')?.[1]
  // distribution answers `0-0` both for nothing and for one byte received; a new session is
  // the only safe reading, and costs at most that byte.
  if (last === undefined || last === '0') throw new SessionLost()
  return {
    offset: Number(last) + 1,
    location: locationOf(res.headers.location ?? location.toString(), base, repo),
  }
}

/** Upload locations may be relative or absolute; never built by us (distribution-spec). */
function locationOf(value: string | string[] | undefined, base: URL, repo: Repository): URL {
  const v = Array.isArray(value) ? value[0] : value
  if (!v)
    throw new CofferError('ERR_REGISTRY_PROTOCOL', `${repo.registry.host}: an upload answer had no Location`)
  return new URL(v, base)
}

/**
 * Passes exactly `length` bytes of `source`, then stops it; fewer is an error, so a short source
 * can never be sent as if complete.
 */
function exactly(source: Readable, length: number, desc: Descriptor): Readable {
  async function* take(): AsyncGenerator<Buffer> {
    let left = length
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (chunk.length >= left) {
          if (left > 0) yield chunk.subarray(0, left)
          left = 0
          return
        }
        left -= chunk.length
        yield chunk
      }
      if (left > 0)
        throw new CofferError(
          'ERR_OCI_SIZE_MISMATCH',
          `blob ${desc.digest} ended ${left} bytes short of ${desc.size}`,
        )
    } finally {
      source.destroy()
    }
  }
  return Readable.from(take(), { objectMode: false, highWaterMark: 64 * KiB })
}
