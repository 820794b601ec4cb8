/**
 * An HTTP proxy on 127.0.0.1 in front of a test registry that holds back the requests `gated`
 * matches until `open()`: a test can stop a pull at a known point (say, mid-way through its
 * layers) and do something concurrently. `reached` resolves when the first gated request arrives.
 *
 * ```ts
 * const proxy = await startGatedProxy(reg.host, (path) => path.includes(layerHex))
 * const pulling = coffer(['pull', …, `docker://${proxy.host}/app:v1`])
 * await proxy.reached
 * // … run gc …
 * proxy.open()
 * await proxy.close()
 * ```
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface GatedProxy {
  /** "127.0.0.1:PORT". */
  host: string
  reached: Promise<void>
  open(): void
  /** Request paths seen so far, gated or not. */
  paths(): string[]
  close(): Promise<void>
}

export async function startGatedProxy(target: string, gated: (path: string) => boolean): Promise<GatedProxy> {
  const [hostname, port] = target.split(':') as [string, string]
  let open!: () => void
  const opened = new Promise<void>((r) => (open = r))
  let reach!: () => void
  const reached = new Promise<void>((r) => (reach = r))
  const seen: string[] = []
  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const up = request(
      { hostname, port: Number(port), path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    up.on('error', () => res.destroy())
    req.pipe(up)
  }
  const server = createServer((req, res) => {
    seen.push(req.url ?? '')
    if (gated(req.url ?? '')) {
      reach()
      void opened.then(() => forward(req, res))
    } else forward(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    reached,
    open,
    paths: () => [...seen],
    close: async () => {
      open()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
