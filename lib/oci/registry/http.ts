import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream'
import { CofferError } from '../../util/errors.js'
import type { Io } from '../../util/io.js'
import { BODY_IDLE_TIMEOUT_MS, CONNECT_TIMEOUT_MS, HEADERS_TIMEOUT_MS } from '../../util/limits.js'

/** One HTTP exchange. A body given as a function is opened anew for every attempt. */
export interface HttpRequest extends Io {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  url: URL
  headers?: Record<string, string>
  body?: string | Buffer | (() => Readable | Promise<Readable>)
}

export interface HttpResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  /** Must be consumed or dropped (`discard`). A connection lost mid-body fails it with ECONNRESET. */
  body: Readable
  url: URL
}

/** The wire: coffer's timeouts, TLS settings and User-Agent over keep-alive connections. */
export interface HttpTransport {
  send(req: HttpRequest): Promise<HttpResponse>
  close(): Promise<void>
}

export interface HttpTransportOptions {
  /** Verify TLS certificates (skopeo `--tls-verify`). */
  tlsVerify: boolean
  userAgent: string
  /** Sockets per origin; enough for concurrent layers. */
  connections?: number
}

/**
 * node:http / node:https with keep-alive agents.
 *
 * Why not undici: measured here, loading it costs 0.15 s and 20 MiB at every start of the CLI
 * (skopeo starts in 0.03 s), and undici 7, the last line for Node 20, throws an uncatchable
 * `AssertionError: assert(!this.paused)` when a server closes a non-keep-alive connection while
 * a body is paused by backpressure (nodejs/undici#5360; fixed in undici 8, which needs Node 22).
 * Layer downloads are exactly where that happens, and a dropped connection is a fault coffer must
 * resume from, not crash on.
 */
export function createHttpTransport(o: HttpTransportOptions): HttpTransport {
  const agentOptions = { keepAlive: true, maxSockets: o.connections ?? 16, timeout: BODY_IDLE_TIMEOUT_MS }
  const http = new HttpAgent(agentOptions)
  const https = new HttpsAgent({ ...agentOptions, rejectUnauthorized: o.tlsVerify })
  return {
    async send(req: HttpRequest): Promise<HttpResponse> {
      const body = typeof req.body === 'function' ? await req.body() : req.body
      return new Promise((resolve, reject) => {
        const secure = req.url.protocol === 'https:'
        const outgoing = (secure ? httpsRequest : httpRequest)(req.url, {
          method: req.method,
          agent: secure ? https : http,
          headers: {
            'user-agent': o.userAgent,
            ...(typeof body === 'string' || Buffer.isBuffer(body)
              ? { 'content-length': String(Buffer.byteLength(body)) }
              : {}),
            ...req.headers,
          },
          ...(req.signal ? { signal: req.signal } : {}),
        })
        // Until headers arrive the connect and header timeouts apply; afterwards the socket's idle timeout.
        const headersTimer = setTimeout(
          () =>
            outgoing.destroy(
              Object.assign(
                new Error(`no answer within ${(CONNECT_TIMEOUT_MS + HEADERS_TIMEOUT_MS) / 1000} s`),
                { code: 'ETIMEDOUT' },
              ),
            ),
          CONNECT_TIMEOUT_MS + HEADERS_TIMEOUT_MS,
        )
        outgoing.setTimeout(BODY_IDLE_TIMEOUT_MS, () =>
          outgoing.destroy(
            Object.assign(new Error(`idle for ${BODY_IDLE_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' }),
          ),
        )
        outgoing.once('error', (err) => {
          clearTimeout(headersTimer)
          if (body && typeof body === 'object' && !Buffer.isBuffer(body)) body.destroy()
          reject(err)
        })
        outgoing.once('response', (res: IncomingMessage) => {
          clearTimeout(headersTimer)
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url: req.url })
        })
        if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) outgoing.end(body)
        else pipeline(body, outgoing, (err) => err && outgoing.destroy(err))
      })
    },
    async close(): Promise<void> {
      http.destroy()
      https.destroy()
    },
  }
}

/** Drops a response body we do not need, so its socket returns to the pool. */
export async function discard(res: HttpResponse): Promise<void> {
  if (res.body.readableEnded || res.body.destroyed) return
  await new Promise<void>((resolve) => {
    res.body.once('end', resolve)
    res.body.once('error', () => resolve())
    res.body.once('close', resolve)
    res.body.resume()
  })
}

/** First value of a header. */
export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()]
  return Array.isArray(v) ? v[0] : v
}

/** Maps a low-level connection failure to a coded error naming the registry. */
export function networkError(host: string, err: unknown): CofferError {
  if (err instanceof CofferError) return err
  const code = (err as { code?: string }).code ?? ''
  const msg = (err as Error).message ?? String(err)
  if ((err as Error).name === 'AbortError' || code === 'ABORT_ERR') {
    return new CofferError('ERR_CANCELED', 'operation canceled', { cause: err })
  }
  if (/CERT|SSL|TLS|self[- ]signed|certificate|EPROTO/i.test(code + msg)) {
    return new CofferError(
      'ERR_REGISTRY_TLS',
      `TLS with ${host} failed: ${msg} (use --tls-verify=false for a registry without a trusted certificate)`,
      { cause: err },
    )
  }
  return new CofferError(
    'ERR_REGISTRY_UNREACHABLE',
    `cannot reach registry ${host}: ${code ? `${code} ` : ''}${msg}`,
    { cause: err },
  )
}
