/**
 * A TCP proxy on 127.0.0.1 in front of one HTTP/1.1 server (a test registry) that injects faults on
 * request: cut a response body after n bytes (for resumable-download tests) or answer with a canned
 * response such as 503 or 429 instead of forwarding.
 *
 * Design: one request per connection, on both sides. For each client connection the proxy reads one
 * request head, opens a fresh upstream connection, sends the head with `Connection: close`, then
 * streams bytes both ways unchanged. The registry closes after its response, so the response ends
 * when the upstream socket does, and the proxy never frames bodies: Content-Length and chunked
 * encoding pass through as they are, in both directions. The response head also says
 * `Connection: close`, so the client opens a new connection for its next request (curl, undici and
 * Go all do); a client that ignores it and sends a second request on the same socket gets no answer.
 * The Host header passes through, so Location headers (upload URLs) point back at the proxy.
 *
 * ```ts
 * const proxy = await startFaultProxy(reg.host)
 * proxy.dropAfterBytes(1000, 1, (m, p) => m === 'GET' && p.includes('/blobs/'))
 * proxy.respondOnce(503, { 'Retry-After': '0' })
 * // … pull from `docker://${proxy.host}/repo:tag` …
 * expect(proxy.requests().filter((r) => r.headers.range)).toHaveLength(1)
 * await proxy.close()
 * ```
 */
import { STATUS_CODES } from 'node:http'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'

/** Chooses which requests a fault applies to; `path` is the request target as sent ("/v2/…?…"). */
export type RequestMatch = (method: string, path: string) => boolean

/** One request as the proxy saw it. Header names are lower-case; repeated headers are joined by ", ". */
export interface ProxiedRequest {
  method: string
  path: string
  headers: Record<string, string>
}

/** A running proxy. Faults queue up and are used in the order they were added. */
export interface FaultProxy {
  /** "127.0.0.1:PORT", to use in place of the target's host. */
  host: string
  /**
   * Cuts the next `times` (default 1) forwarded responses that carry a body after `n` bytes of that
   * body as sent on the wire (chunk framing included, the head excluded): the client gets the head and
   * n bytes, then the connection closes. "Carrying a body" means a 2xx other than 204 to a request
   * other than HEAD, without `Content-Length: 0`; 401s and empty 202s pass untouched. `match` narrows
   * it further, e.g. to blob GETs. A response no longer than n bytes still uses one of the `times`.
   */
  dropAfterBytes(n: number, times?: number, match?: RequestMatch): void
  /**
   * Answers the next request that `match`es (default: any) with this response instead of forwarding
   * it. Content-Length is added unless given; the connection closes after it.
   */
  respondOnce(status: number, headers?: Record<string, string>, body?: string, match?: RequestMatch): void
  /** Every request received so far, forwarded or answered, oldest first. */
  requests(): ProxiedRequest[]
  /** Stops listening and destroys every open connection. */
  close(): Promise<void>
}

/** A request or response head larger than this is refused; registry heads are a few hundred bytes. */
const MAX_HEAD_BYTES = 64 * 1024
const HEAD_END = '\r\n\r\n'
/** A request line starts with a method token; anything else (say 0x16, a TLS handshake) is refused. */
const REQUEST_LINE_START = /^[A-Z]$/
/** Hop-by-hop headers that the proxy replaces with its own `Connection: close` (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection'])

interface Drop {
  bytes: number
  times: number
  match?: RequestMatch
}

interface Canned {
  status: number
  headers: Record<string, string>
  body: string
  match?: RequestMatch
}

/** Starts a proxy in front of `target` ("host:port"). */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const colon = target.lastIndexOf(':')
  const upstreamHost = target.slice(0, colon)
  const upstreamPort = Number(target.slice(colon + 1))
  if (colon < 1 || !Number.isInteger(upstreamPort))
    throw new Error(`fault proxy target must be host:port: ${target}`)

  const log: ProxiedRequest[] = []
  const drops: Drop[] = []
  const canned: Canned[] = []
  const sockets = new Set<Socket>()
  const track = (s: Socket): Socket => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
    return s
  }

  /** Takes the first queued fault whose matcher accepts the request; `times` counts down. */
  function takeDrop(method: string, path: string): number | undefined {
    const i = drops.findIndex((d) => !d.match || d.match(method, path))
    const d = drops[i]
    if (!d) return undefined
    if (--d.times <= 0) drops.splice(i, 1)
    return d.bytes
  }
  function takeCanned(method: string, path: string): Canned | undefined {
    const i = canned.findIndex((c) => !c.match || c.match(method, path))
    return i < 0 ? undefined : canned.splice(i, 1)[0]
  }

  // allowHalfOpen: a client that half-closes after its request must still get the response.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    track(client)
    client.on('error', () => client.destroy())
    // A TLS ClientHello (containers/image tries https first even with tls-verify=false) never ends in
    // a blank line; refuse anything that cannot start a request line at once, as Go's server does,
    // so the client falls back to plain HTTP instead of waiting for its handshake timeout.
    let refused = false
    client.once('data', (first: Buffer) => {
      if (REQUEST_LINE_START.test(first.toString('latin1', 0, 1))) return
      refused = true
      client.end(cannedResponse('GET', 400, {}, 'fault proxy: not an HTTP/1.1 request\n'))
      client.destroySoon()
    })
    readHead(client, Buffer.alloc(0), (head, rest) => {
      if (refused) return
      const req = parseRequestHead(head)
      if (!req) return client.end(cannedResponse('GET', 400, {}, 'bad request head\n'))
      log.push(req)
      const answer = takeCanned(req.method, req.path)
      if (answer) {
        client.end(cannedResponse(req.method, answer.status, answer.headers, answer.body))
        // Keep reading so an unread request body cannot turn our close into a reset.
        client.resume()
        return
      }
      forward(client, head, rest, req, () => takeDrop(req.method, req.path))
    })
  })

  /** One request: fresh upstream connection, head rewritten, bytes streamed both ways. */
  function forward(
    client: Socket,
    head: string,
    rest: Buffer,
    req: ProxiedRequest,
    drop: () => number | undefined,
  ): void {
    const upstream = track(connect({ host: upstreamHost, port: upstreamPort, allowHalfOpen: true }))
    let answered = false
    upstream.on('error', (err) => {
      if (!answered) client.end(cannedResponse(req.method, 502, {}, `fault proxy: upstream ${err.message}\n`))
      else client.destroy()
    })
    client.on('close', () => upstream.destroy())

    // === request: rewritten head, then the body bytes as they come (no re-framing)
    upstream.write(Buffer.from(withConnectionClose(head) + HEAD_END, 'latin1'))
    if (rest.length) upstream.write(rest)
    relay(client, upstream)
    // A client half-close is not forwarded: Go's server would take EOF as a disconnect and abort.

    // === response: interim 1xx heads pass through; the final head decides on a fault
    let left: number | undefined
    readHead(upstream, Buffer.alloc(0), function onHead(respHead, body) {
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(respHead)?.[1] ?? NaN)
      if (status >= 100 && status < 200 && status !== 101) {
        client.write(Buffer.from(respHead + HEAD_END, 'latin1'))
        return readHead(upstream, body, onHead)
      }
      answered = true
      if (carriesBody(req.method, status, respHead)) left = drop()
      client.write(Buffer.from(withConnectionClose(respHead) + HEAD_END, 'latin1'))
      const cut = (): void => {
        upstream.destroy()
        client.destroySoon()
      }
      if (left === 0) return cut()
      const send = (chunk: Buffer): void => {
        if (left !== undefined && chunk.length >= left) {
          // === fault: the client gets exactly `left` more bytes, then the connection closes
          client.write(chunk.subarray(0, left))
          return cut()
        }
        if (left !== undefined) left -= chunk.length
        if (!client.write(chunk)) upstream.pause()
      }
      client.on('drain', () => upstream.resume())
      upstream.on('data', send)
      upstream.on('end', () => client.end())
      if (body.length) send(body)
      upstream.resume()
    })
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = server.address() as AddressInfo

  return {
    host: `127.0.0.1:${port}`,
    dropAfterBytes(n, times = 1, match) {
      if (!(n >= 0) || !(times >= 1)) throw new Error('dropAfterBytes: n must be ≥ 0 and times ≥ 1')
      drops.push({ bytes: n, times, ...(match ? { match } : {}) })
    },
    respondOnce(status, headers = {}, body = '', match) {
      canned.push({ status, headers, body, ...(match ? { match } : {}) })
    },
    requests: () => log.map((r) => ({ ...r, headers: { ...r.headers } })),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const s of sockets) s.destroy()
      await closed
    },
  }
}

/**
 * Collects bytes until a blank line ends an HTTP head, then pauses `s` and calls `done` with the head
 * (without the blank line) and whatever arrived after it. Oversized heads destroy the socket.
 */
function readHead(s: Socket, initial: Buffer, done: (head: string, rest: Buffer) => void): void {
  let buf = initial
  const check = (): boolean => {
    const end = buf.indexOf(HEAD_END)
    if (end < 0) {
      if (buf.length > MAX_HEAD_BYTES) s.destroy()
      return false
    }
    s.off('data', onData)
    s.pause()
    done(buf.subarray(0, end).toString('latin1'), buf.subarray(end + HEAD_END.length))
    return true
  }
  const onData = (chunk: Buffer): void => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
    check()
  }
  s.on('data', onData)
  if (!check()) s.resume()
}

/** Request line and headers; undefined if the request line is not `METHOD target HTTP/1.x`. */
function parseRequestHead(head: string): ProxiedRequest | undefined {
  const [line = '', ...fields] = head.split('\r\n')
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(line)
  if (!m?.[1] || !m[2]) return undefined
  const headers: Record<string, string> = {}
  for (const f of fields) {
    const colon = f.indexOf(':')
    if (colon <= 0) continue
    const name = f.slice(0, colon).trim().toLowerCase()
    const value = f.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  return { method: m[1], path: m[2], headers }
}

/** The head with its hop-by-hop connection headers replaced by `Connection: close`. */
function withConnectionClose(head: string): string {
  const [first = '', ...fields] = head.split('\r\n')
  const kept = fields.filter((f) => !HOP_BY_HOP.has(f.slice(0, f.indexOf(':')).trim().toLowerCase()))
  return [first, ...kept, 'Connection: close'].join('\r\n')
}

/** Whether a response is one `dropAfterBytes` applies to (see its doc). */
function carriesBody(method: string, status: number, head: string): boolean {
  if (method === 'HEAD' || status < 200 || status >= 300 || status === 204) return false
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1]
  return length === undefined || Number(length) > 0
}

/** A complete response that closes the connection; HEAD gets the head only (RFC 9110 §9.3.2). */
function cannedResponse(
  method: string,
  status: number,
  headers: Record<string, string>,
  body: string,
): string {
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`]
  const names = new Set(Object.keys(headers).map((h) => h.toLowerCase()))
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k.toLowerCase())) lines.push(`${k}: ${v}`)
  if (!names.has('content-length')) lines.push(`Content-Length: ${Buffer.byteLength(body)}`)
  lines.push('Connection: close')
  return lines.join('\r\n') + HEAD_END + (method === 'HEAD' ? '' : body)
}

/** client → upstream with backpressure; stops at the client's end. */
function relay(from: Socket, to: Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause()
  })
  to.on('drain', () => from.resume())
  from.resume()
}
