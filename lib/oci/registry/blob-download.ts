import { Readable } from 'node:stream'
import { CofferError } from '../../util/errors.js'
import type { Io } from '../../util/io.js'
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
  async function* chunks(): AsyncGenerator<Buffer> {
    let position = offset
    let stalled = 0
    while (true) {
      let res: HttpResponse
      try {
        res = await deps.fetch(position, o)
      } catch (err) {
        if (++stalled > MAX_STALLED_RESUMES || !isRetryableNetworkError(err)) throw err
        await deps.pause(stalled, o)
        continue
      }
      let skip = 0
      if (res.status === 200) {
        skip = position // Range ignored: the body starts at byte 0.
      } else if (res.status === 206) {
        const start = /^bytes (\d+)-/.exec(header(res, 'content-range') ?? '')?.[1]
        if (start === undefined || Number(start) !== position) {
          await discard(res)
          throw new CofferError(
            'ERR_REGISTRY_PROTOCOL',
            `${deps.host}: blob ${desc.digest} resumed at the wrong offset`,
          )
        }
      } else if (res.status === 416 && position >= desc.size) {
        await discard(res)
        return
      } else {
        throw await deps.fail(res, `fetching blob ${desc.digest}`)
      }
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          if (skip >= chunk.length) {
            skip -= chunk.length
            continue
          }
          const piece = skip > 0 ? chunk.subarray(skip) : chunk
          skip = 0
          position += piece.length
          stalled = 0
          yield piece
        }
      } catch (err) {
        res.body.destroy()
        if (o.signal?.aborted || !isRetryableNetworkError(err) || ++stalled > MAX_STALLED_RESUMES) throw err
        await deps.pause(stalled, o)
        continue
      }
      // A body that ended cleanly but short is a truncation too (a proxy that closed politely).
      if (position < desc.size) {
        if (++stalled > MAX_STALLED_RESUMES) {
          throw new CofferError(
            'ERR_REGISTRY_PROTOCOL',
            `${deps.host}: blob ${desc.digest} keeps ending at ${position} of ${desc.size} bytes`,
          )
        }
        continue
      }
      return
    }
  }
  return Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 })
}
