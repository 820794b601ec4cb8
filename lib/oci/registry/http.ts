import type { Readable } from 'node:stream'
import { Agent, request } from 'undici'
import { createDownloader } from './http-download.js'
import { CofferError } from '../../util/errors.js'
import type { Io } from '../../util/io.js'
import { BODY_IDLE_TIMEOUT_MS, CONNECT_TIMEOUT_MS, HEADERS_TIMEOUT_MS } from '../../util/limits.js'

/** One HTTP exchange. A body given as a function is opened anew for every attempt. */
export interface HttpRequest extends Io {
  /** A large body that the caller streams with backpressure (blobs): see http-download.ts. */
  streaming?: boolean
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  url: URL
  headers?: Record<string, string>
  body?: string | Buffer | (() => Readable | Promise<Readable>)
}

export interface HttpResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  /** Must be consumed or destroyed (`discard`). */
  body: Readable
  url: URL
}

/** The wire: undici with coffer's timeouts, TLS settings and User-Agent. */
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

export function createHttpTransport(o: HttpTransportOptions): HttpTransport {
  const downloader = createDownloader(o)
  const agent = new Agent({
    connect: { timeout: CONNECT_TIMEOUT_MS, rejectUnauthorized: o.tlsVerify },
    headersTimeout: HEADERS_TIMEOUT_MS,
    bodyTimeout: BODY_IDLE_TIMEOUT_MS,
    connections: o.connections ?? 16,
    keepAliveTimeout: 30_000,
  })
  return {
    async send(req: HttpRequest): Promise<HttpResponse> {
      if (req.streaming && req.method === 'GET' && req.body === undefined) return downloader.get(req)
      const body = typeof req.body === 'function' ? await req.body() : req.body
      const res = await request(req.url, {
        dispatcher: agent,
        method: req.method,
        headers: { 'user-agent': o.userAgent, ...req.headers },
        ...(body !== undefined ? { body } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
      }).catch((err: unknown) => {
        if (typeof req.body === 'function' && body && typeof body === 'object' && 'destroy' in body)
          body.destroy()
        throw err
      })
      return {
        status: res.statusCode,
        headers: res.headers,
        body: res.body as unknown as Readable,
        url: req.url,
      }
    },
    close: async () => {
      downloader.close()
      await agent.close()
    },
  }
}

/** Drops a response body we do not need, so its socket returns to the pool. */
export async function discard(res: HttpResponse): Promise<void> {
  const body = res.body as Readable & { dump?: () => Promise<void> }
  try {
    if (body.dump) await body.dump()
    else body.resume()
  } catch {
    body.destroy()
  }
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
  if (/CERT|SSL|TLS|self[- ]signed|certificate/i.test(code + msg)) {
    return new CofferError(
      'ERR_REGISTRY_TLS',
      `TLS with ${host} failed: ${msg} (use --tls-verify=false for a registry without a trusted certificate)`,
      { cause: err },
    )
  }
  if ((err as Error).name === 'AbortError' || code === 'ABORT_ERR') {
    return new CofferError('ERR_CANCELED', 'operation canceled', { cause: err })
  }
  return new CofferError(
    'ERR_REGISTRY_UNREACHABLE',
    `cannot reach registry ${host}: ${code ? `${code} ` : ''}${msg}`,
    { cause: err },
  )
}
