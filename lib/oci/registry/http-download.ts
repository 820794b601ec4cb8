import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { CONNECT_TIMEOUT_MS, HEADERS_TIMEOUT_MS, BODY_IDLE_TIMEOUT_MS } from '../../util/limits.js'
import type { HttpRequest, HttpResponse, HttpTransportOptions } from './http.js'

/**
 * Blob downloads over node:http rather than undici.
 *
 * Why: undici 7 (the last line that supports Node 20) throws an uncatchable
 * `AssertionError: assert(!this.paused)` when a server closes a non-keep-alive connection while the
 * body is paused by backpressure (nodejs/undici#5360, fixed by #5474 only in undici 8, which needs
 * Node 22). Layer bodies are the one place where coffer applies backpressure (a slow disk, a slow
 * upload) and where a dropped connection is an expected fault to resume from, so they must not be
 * able to crash the process. Everything else (small JSON bodies read at once) stays on undici.
 */
export interface Downloader {
  get(req: HttpRequest): Promise<HttpResponse>
  close(): void
}

export function createDownloader(o: HttpTransportOptions): Downloader {
  const agentOptions = { keepAlive: true, maxSockets: o.connections ?? 16, timeout: BODY_IDLE_TIMEOUT_MS }
  const http = new HttpAgent(agentOptions)
  const https = new HttpsAgent({ ...agentOptions, rejectUnauthorized: o.tlsVerify })
  return {
    get(req: HttpRequest): Promise<HttpResponse> {
      return new Promise((resolve, reject) => {
        const secure = req.url.protocol === 'https:'
        const send = secure ? httpsRequest : httpRequest
        const outgoing = send(req.url, {
          method: req.method,
          agent: secure ? https : http,
          headers: { 'user-agent': o.userAgent, ...req.headers },
          ...(req.signal ? { signal: req.signal } : {}),
        })
        // Until headers arrive the connect and header timeouts apply; then the body idle timeout.
        const headersTimer = setTimeout(
          () => outgoing.destroy(timeoutError('UND_ERR_HEADERS_TIMEOUT')),
          CONNECT_TIMEOUT_MS + HEADERS_TIMEOUT_MS,
        )
        outgoing.setTimeout(BODY_IDLE_TIMEOUT_MS, () =>
          outgoing.destroy(timeoutError('UND_ERR_BODY_TIMEOUT')),
        )
        outgoing.once('error', (err) => {
          clearTimeout(headersTimer)
          reject(err)
        })
        outgoing.once('response', (res: IncomingMessage) => {
          clearTimeout(headersTimer)
          // A connection that dies mid-body makes the body stream fail with ECONNRESET ("aborted").
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url: req.url })
        })
        outgoing.end()
      })
    },
    close(): void {
      http.destroy()
      https.destroy()
    },
  }
}

function timeoutError(code: string): Error {
  return Object.assign(new Error('timed out waiting for the registry'), { code })
}
