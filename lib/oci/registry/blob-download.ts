import { Readable } from 'node:stream'
import { CofferError } from '../../util/errors.js'
import type { Io } from '../../util/io.js'
import { KiB } from '../../util/limits.js'
import type { Descriptor } from '../schemas.js'
import { discard, header, type HttpResponse } from './http.js'
import { isRetryableNetworkError } from './retry.js'

/** Resumes after a dropped body this many times in a row without progress before giving up. */
const MAX_STALLED_RESUMES = 5

export interface DownloadDeps {
  host: string
  /** GET the blob, with `Range: bytes=<offset>-` when offset > 0. */
  fetch(offset: number, o: Io): Promise<HttpResponse>
  fail(res: HttpResponse, what: string): Promise<CofferError>
  pause(attempt: number, o: Io): Promise<void>
}

/**
 * A blob's bytes from `offset`, resuming with `Range` when the connection drops mid-body
 * (distribution-spec: registries SHOULD support Range on blob GETs). A server that ignores Range
 * and answers 200 is handled by skipping what we already have. The bytes are not verified here:
 * the caller pipes them through `verifyingStream`, so a resumed download is checked whole.
 */
export function resumableBlobStream(
  desc: Descriptor,
  offset: number,
  deps: DownloadDeps,
  o: Io = {},
): Readable {
  return new ResumableBlobReader(desc, offset, deps, o)
}

/**
 * Chunks pass from the response body to the reader untouched, with backpressure (the body is
 * paused while our buffer is full); only a failed or short body costs a new request.
 */
class ResumableBlobReader extends Readable {
  private body: Readable | undefined
  private opening = false
  private stalled = 0

  constructor(
    private readonly desc: Descriptor,
    private position: number,
    private readonly deps: DownloadDeps,
    private readonly io: Io,
  ) {
    super({ highWaterMark: 256 * KiB })
  }

  override _read(): void {
    if (this.body) this.body.resume()
    else if (!this.opening) void this.open()
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.body?.destroy()
    callback(err)
  }

  private async open(): Promise<void> {
    this.opening = true
    let res: HttpResponse
    try {
      res = await this.deps.fetch(this.position, this.io)
    } catch (err) {
      this.opening = false
      return this.retryOrFail(err)
    }
    this.opening = false
    let skip = 0
    if (res.status === 200) {
      skip = this.position // Range ignored: the body starts at byte 0.
    } else if (res.status === 206) {
      const start = /^bytes (\d+)-/.exec(header(res, 'content-range') ?? '')?.[1]
      if (start === undefined || Number(start) !== this.position) {
        await discard(res)
        this.destroy(
          new CofferError(
            'ERR_REGISTRY_PROTOCOL',
            `${this.deps.host}: blob ${this.desc.digest} resumed at the wrong offset`,
          ),
        )
        return
      }
    } else if (res.status === 416 && this.position >= this.desc.size) {
      await discard(res)
      this.push(null)
      return
    } else {
      this.destroy(await this.deps.fail(res, `fetching blob ${this.desc.digest}`))
      return
    }

    const body = res.body
    this.body = body
    let settled = false
    const done = (err?: unknown): void => {
      if (settled) return
      settled = true
      body.removeAllListeners('data')
      this.body = undefined
      if (err !== undefined) {
        body.destroy()
        this.retryOrFail(err)
      } else if (this.position < this.desc.size) {
        // A body that ended cleanly but short is a truncation too (a proxy that closed politely).
        this.retryOrFail(
          new CofferError(
            'ERR_REGISTRY_PROTOCOL',
            `${this.deps.host}: blob ${this.desc.digest} ended at ${this.position} of ${this.desc.size} bytes`,
          ),
          true,
        )
      } else {
        this.push(null)
      }
    }
    body.on('data', (chunk: Buffer) => {
      if (skip >= chunk.length) {
        skip -= chunk.length
        return
      }
      const piece = skip > 0 ? chunk.subarray(skip) : chunk
      skip = 0
      this.position += piece.length
      this.stalled = 0
      if (!this.push(piece)) body.pause()
    })
    body.once('end', () => done())
    body.once('error', (err) => done(err))
    body.once('close', () =>
      done(
        body.readableEnded
          ? undefined
          : Object.assign(new Error('connection closed mid-body'), { code: 'ECONNRESET' }),
      ),
    )
  }

  private retryOrFail(err: unknown, truncated = false): void {
    if (this.destroyed) return
    const retryable = truncated || isRetryableNetworkError(err)
    if (this.io.signal?.aborted || !retryable || ++this.stalled > MAX_STALLED_RESUMES) {
      this.destroy(err as Error)
      return
    }
    void this.deps.pause(this.stalled, this.io).then(
      () => this.open(),
      (e: unknown) => this.destroy(e as Error),
    )
  }
}
