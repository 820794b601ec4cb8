/**
 * A real registry for integration tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, a
 * random port and a fresh temp dir, with no auth, htpasswd basic auth, or bearer tokens from a token
 * server that runs inside the test process.
 *
 * Lifecycle: `startRegistry` resolves once `GET /v2/` answers; `stop()` kills the registry, closes the
 * token server and deletes the temp dir. A failed start cleans up before it throws, and an exit hook
 * SIGKILLs any registry still running when the test process exits, so no test leaves one behind.
 *
 * ```ts
 * const reg = await startRegistry({ auth: 'token' })
 * await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `${reg.username}:${reg.password}`,
 *   `oci:${dir}:v1`, `docker://${reg.host}/demo:v1`])
 * expect(reg.tokenRequests()).toBeGreaterThan(0)
 * await reg.stop()
 * ```
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { X509Certificate, createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import { rmSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { SignJWT, importPKCS8, type CryptoKey } from 'jose'

const execFileP = promisify(execFile)

/** How the registry authenticates clients. */
export interface RegistryOptions {
  /** 'none' (default): open registry. 'basic': htpasswd. 'token': bearer tokens from our token server. */
  auth?: 'none' | 'basic' | 'token'
  /** Account for 'basic' and 'token' (default 'coffer'). */
  username?: string
  /** Password for 'basic' and 'token' (default: random per registry). */
  password?: string
}

/** A running registry. Call `stop()` in `afterAll`, whatever happened. */
export interface TestRegistry {
  /** "127.0.0.1:PORT", as used in image references (`docker://${host}/repo:tag`). */
  host: string
  /** "http://127.0.0.1:PORT". */
  url: string
  /** The account that 'basic' and 'token' modes accept; undefined for 'none'. */
  username?: string
  password?: string
  /**
   * Token mode: how many requests the token endpoint answered (GET and POST, granted or refused),
   * so tests can assert that a client caches tokens. Always 0 in the other modes.
   */
  tokenRequests(): number
  /** Kills the registry, closes the token server, deletes the temp dir. Idempotent. */
  stop(): Promise<void>
}

/** Registry binary from Debian's docker-registry package (distribution 2.8.2). */
const REGISTRY_BIN = 'docker-registry'
/** Token `aud` and the `service` the registry names in its Bearer challenge. */
const TOKEN_SERVICE = 'coffer-test-registry'
/** Token `iss`; the registry accepts only this issuer. */
const TOKEN_ISSUER = 'coffer-test-token-issuer'
/** Lifetime of issued tokens, as `expires_in` and `exp - iat`. */
const TOKEN_TTL_SECONDS = 300
const READY_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 5_000
/** A random port can be taken between our probe and the registry's bind; retry that race this often. */
const PORT_ATTEMPTS = 3
/** How much registry output to keep for error messages. */
const OUTPUT_TAIL_CHARS = 8_192

/**
 * Registries still running and temp dirs not yet removed. One `exit` hook SIGKILLs and deletes whatever
 * a test left behind (no `stop()`, or a worker that dies early). `exit` handlers must be synchronous;
 * kill() and rmSync are.
 */
const liveChildren = new Set<ChildProcess>()
const liveDirs = new Set<string>()
let exitHookInstalled = false
function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const c of liveChildren) c.kill('SIGKILL')
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true })
  })
}
function track(child: ChildProcess): void {
  liveChildren.add(child)
  child.once('exit', () => liveChildren.delete(child))
  // waitReady reports spawn errors; without a listener a late one would crash the test worker.
  child.on('error', () => {})
}

/** Starts a registry in the given auth mode. See the module doc for the lifecycle. */
export async function startRegistry(o: RegistryOptions = {}): Promise<TestRegistry> {
  const mode = o.auth ?? 'none'
  const creds =
    mode === 'none'
      ? undefined
      : { username: o.username ?? 'coffer', password: o.password ?? `pw-${randomBytes(9).toString('hex')}` }
  installExitHook()
  const dir = await mkdtemp(join(tmpdir(), 'coffer-registry-'))
  liveDirs.add(dir)
  let token: TokenServer | undefined
  let child: ChildProcess | undefined
  const cleanup = async (): Promise<void> => {
    if (child) await killChild(child)
    await token?.close()
    await rm(dir, { recursive: true, force: true })
    liveDirs.delete(dir)
  }
  try {
    let authYaml = ''
    if (mode === 'basic' && creds) authYaml = await basicAuthYaml(dir, creds)
    if (mode === 'token' && creds) {
      token = await startTokenServer(dir, creds)
      authYaml = tokenAuthYaml(token)
    }
    let port = 0
    for (let attempt = 1; ; attempt++) {
      port = await freePort()
      const config = join(dir, 'config.yml')
      await writeFile(config, registryYaml(dir, port, authYaml))
      const out = new OutputTail()
      child = spawn(REGISTRY_BIN, ['serve', config], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: registryEnv(),
      })
      track(child)
      child.stdout?.on('data', (b: Buffer) => out.add(b))
      child.stderr?.on('data', (b: Buffer) => out.add(b))
      try {
        await waitReady(child, port, out)
        break
      } catch (err) {
        await killChild(child)
        child = undefined
        if (attempt < PORT_ATTEMPTS && /address already in use/.test(out.text())) continue
        throw err
      }
    }
    const host = `127.0.0.1:${port}`
    let stopped: Promise<void> | undefined
    return {
      host,
      url: `http://${host}`,
      ...creds,
      tokenRequests: () => token?.requests() ?? 0,
      stop: () => (stopped ??= cleanup()),
    }
  } catch (err) {
    await cleanup()
    throw err
  }
}

// --- registry process -------------------------------------------------------------------------------

/**
 * distribution's config, written as YAML by hand: JSON-quoted strings are valid YAML scalars, so paths
 * need no escaping. Keys follow distribution 2.8's docs/configuration.md.
 */
function registryYaml(dir: string, port: number, authYaml: string): string {
  const q = JSON.stringify
  return `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${q(join(dir, 'storage'))}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${q(`127.0.0.1:${port}`)}
  # A fixed secret silences the "No HTTP secret provided" warning; only one instance uses it.
  secret: ${q(randomBytes(16).toString('hex'))}
health:
  storagedriver:
    enabled: false
${authYaml}`
}

/** The test runner's environment minus REGISTRY_*: distribution lets those override any config key. */
function registryEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')))
}

/** Asks the kernel for a free port. Racy by nature; the caller retries "address already in use". */
async function freePort(): Promise<number> {
  const srv = createNetServer()
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', resolve)
  })
  const { port } = srv.address() as AddressInfo
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
}

/** Polls `GET /v2/` until it answers 200 (open) or 401 (auth); fails early if the registry exits. */
async function waitReady(child: ChildProcess, port: number, out: OutputTail): Promise<void> {
  let exited: string | undefined
  const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
    exited = `exited with ${signal ?? code}`
  }
  child.once('exit', onExit)
  child.once('error', (err) => (exited = `failed to start: ${err.message}`))
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS
    while (Date.now() < deadline) {
      if (exited) break
      const status = await probe(`http://127.0.0.1:${port}/v2/`)
      if (status === 200 || status === 401) return
      await new Promise((r) => setTimeout(r, 50))
    }
    const why = exited ?? `did not answer GET /v2/ within ${READY_TIMEOUT_MS} ms`
    throw new Error(`docker-registry on port ${port} ${why}; output:\n${out.text()}`)
  } finally {
    child.off('exit', onExit)
  }
}

/** One GET without connection pooling (a pooled socket would outlive the registry); undefined if down. */
function probe(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false, timeout: 1_000 }, (res) => {
      res.resume()
      resolve(res.statusCode)
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
  })
}

/** SIGTERM, then SIGKILL if the registry does not exit in time. Only ever our own child, by its pid. */
async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

/** Keeps the last few KiB of the registry's stdout and stderr for error messages. */
class OutputTail {
  #text = ''
  add(b: Buffer): void {
    this.#text = (this.#text + b.toString('utf8')).slice(-OUTPUT_TAIL_CHARS)
  }
  text(): string {
    return this.#text
  }
}

// --- basic auth -------------------------------------------------------------------------------------

/** htpasswd auth; distribution 2.8 only accepts bcrypt entries, hence `-B`. */
async function basicAuthYaml(dir: string, creds: Credentials): Promise<string> {
  // The password on argv is visible in `ps`; acceptable for a throwaway test account.
  const { stdout } = await execFileP('htpasswd', ['-Bbn', creds.username, creds.password])
  const path = join(dir, 'htpasswd')
  await writeFile(path, stdout.trim() + '\n', { mode: 0o600 })
  return `auth:
  htpasswd:
    realm: "coffer-test"
    path: ${JSON.stringify(path)}
`
}

// --- token auth -------------------------------------------------------------------------------------

interface Credentials {
  username: string
  password: string
}

/** One `access` entry of a registry token (distribution registry/auth/token/token.go ResourceActions). */
interface ResourceActions {
  type: string
  name: string
  actions: string[]
}

interface TokenServer {
  realm: string
  certPath: string
  requests(): number
  close(): Promise<void>
}

function tokenAuthYaml(t: TokenServer): string {
  return `auth:
  token:
    realm: ${JSON.stringify(t.realm)}
    service: ${JSON.stringify(TOKEN_SERVICE)}
    issuer: ${JSON.stringify(TOKEN_ISSUER)}
    rootcertbundle: ${JSON.stringify(t.certPath)}
`
}

/**
 * A token server after the Docker token spec (distribution docs/spec/auth/token.md) and its OAuth2
 * variant (docs/spec/auth/oauth.md), on 127.0.0.1 with a random port:
 *
 * - `GET /token?service=…&scope=…` with Basic credentials; no or wrong credentials get 401.
 * - `POST /token` with a form: `grant_type=password` (username, password; `access_type=offline` also
 *   returns a refresh_token) or `grant_type=refresh_token`; failures get 400 `invalid_grant`
 *   (RFC 6749 §5.2).
 *
 * A known account is granted every action it asks for. Tokens are ES256 JWTs whose `x5c` header
 * carries our self-signed certificate, which is also the registry's `rootcertbundle`: distribution
 * 2.8 verifies the x5c chain against that bundle and then the signature with the leaf's key.
 */
async function startTokenServer(dir: string, creds: Credentials): Promise<TokenServer> {
  const keyPath = join(dir, 'token-key.pem')
  const certPath = join(dir, 'token-cert.pem')
  const newCert = 'req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2'.split(' ')
  const subject = '/CN=coffer test token issuer'
  await execFileP('openssl', [...newCert, '-keyout', keyPath, '-out', certPath, '-subj', subject])
  const key = await importPKCS8(await readFile(keyPath, 'utf8'), 'ES256')
  // x5c holds standard (not URL-safe) base64 of the DER certificate (RFC 7515 §4.1.6).
  const x5c = [new X509Certificate(await readFile(certPath)).raw.toString('base64')]
  const issuer: Issuer = { key, x5c, creds, refreshTokens: new Map() }

  let count = 0
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (url.pathname !== '/token') return sendJson(res, 404, { error: 'not_found' })
    count++
    const handle = req.method === 'POST' ? handlePost : req.method === 'GET' ? handleGet : undefined
    if (!handle) return sendJson(res, 405, { error: 'method_not_allowed' })
    handle(issuer, req, res, url).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err) })
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const { port } = server.address() as AddressInfo
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certPath,
    requests: () => count,
    close: () => closeServer(server),
  }
}

interface Issuer {
  key: CryptoKey
  x5c: string[]
  creds: Credentials
  /** refresh_token → account, for `grant_type=refresh_token`. */
  refreshTokens: Map<string, string>
}

/** Docker token spec: Basic credentials, `scope` may repeat. */
async function handleGet(issuer: Issuer, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const user = basicUser(issuer.creds, req.headers.authorization)
  if (!user) {
    res.setHeader('WWW-Authenticate', 'Basic realm="coffer-test-token"')
    return sendJson(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] })
  }
  if (!serviceOk(url.searchParams.get('service'))) return sendJson(res, 400, { error: 'invalid_service' })
  const t = await issue(issuer, user, url.searchParams.getAll('scope'))
  sendJson(res, 200, {
    token: t.token,
    access_token: t.token,
    expires_in: TOKEN_TTL_SECONDS,
    issued_at: t.issuedAt,
  })
}

/** OAuth2 form (distribution docs/spec/auth/oauth.md): scopes are space-separated in one `scope`. */
async function handlePost(
  issuer: Issuer,
  req: IncomingMessage,
  res: ServerResponse,
  _url: URL,
): Promise<void> {
  const form = new URLSearchParams(await readBody(req, 64 * 1024))
  if (!serviceOk(form.get('service'))) return sendJson(res, 400, { error: 'invalid_request' })
  let user: string | undefined
  let refreshToken: string | undefined
  switch (form.get('grant_type')) {
    case 'password':
      if (credsMatch(issuer.creds, form.get('username') ?? '', form.get('password') ?? '')) {
        user = issuer.creds.username
        if (form.get('access_type') === 'offline') {
          refreshToken = randomBytes(24).toString('base64url')
          issuer.refreshTokens.set(refreshToken, user)
        }
      }
      break
    case 'refresh_token':
      refreshToken = form.get('refresh_token') ?? ''
      user = issuer.refreshTokens.get(refreshToken)
      break
    default:
      return sendJson(res, 400, { error: 'unsupported_grant_type' })
  }
  if (!user) return sendJson(res, 400, { error: 'invalid_grant' })
  const scope = form.get('scope') ?? ''
  const t = await issue(issuer, user, [scope])
  sendJson(res, 200, {
    access_token: t.token,
    token: t.token,
    scope,
    expires_in: TOKEN_TTL_SECONDS,
    issued_at: t.issuedAt,
    ...(refreshToken ? { refresh_token: refreshToken } : {}),
  })
}

/**
 * Signs a registry token. Claims as distribution 2.8's ClaimSet expects them: `aud` a plain string
 * (2.8 unmarshals it into a Go string, so `aud: [service]`, valid per RFC 7519, fails to parse and the
 * registry answers a bare 401), `exp`/`nbf` in seconds (checked with 60 s leeway), and the granted
 * `access` list. jose's setAudience(string) emits the string form.
 */
async function issue(
  issuer: Issuer,
  user: string,
  scopes: string[],
): Promise<{ token: string; issuedAt: string }> {
  const now = Math.floor(Date.now() / 1000)
  const token = await new SignJWT({ access: parseScopes(scopes) })
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: issuer.x5c })
    .setIssuer(TOKEN_ISSUER)
    .setSubject(user)
    .setAudience(TOKEN_SERVICE)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + TOKEN_TTL_SECONDS)
    .setJti(randomUUID())
    .sign(issuer.key)
  return { token, issuedAt: new Date(now * 1000).toISOString() }
}

/**
 * `repository:library/x:pull,push` → one access entry; entries for the same resource merge. Names
 * never contain ':' but types may carry a class (`repository(plugin)`), so split at the first and
 * last colon. Each parameter may hold several space-separated scopes.
 */
function parseScopes(scopes: string[]): ResourceActions[] {
  const byResource = new Map<string, ResourceActions>()
  for (const scope of scopes.flatMap((s) => s.split(' ')).filter(Boolean)) {
    const first = scope.indexOf(':')
    const last = scope.lastIndexOf(':')
    if (first < 0 || last === first) continue
    const type = scope.slice(0, first)
    const name = scope.slice(first + 1, last)
    const entry = byResource.get(`${type}:${name}`) ?? { type, name, actions: [] }
    for (const a of scope.slice(last + 1).split(','))
      if (a && !entry.actions.includes(a)) entry.actions.push(a)
    byResource.set(`${type}:${name}`, entry)
  }
  return [...byResource.values()]
}

/** Clients send the service from the registry's challenge; a different one means a confused client. */
function serviceOk(service: string | null): boolean {
  return service === null || service === TOKEN_SERVICE
}

/** The account name if `header` is Basic auth with the right credentials. */
function basicUser(creds: Credentials, header: string | undefined): string | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '')
  if (!m?.[1]) return undefined
  const decoded = Buffer.from(m[1], 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  const user = decoded.slice(0, colon)
  return credsMatch(creds, user, decoded.slice(colon + 1)) ? user : undefined
}

/** Constant-time comparison of hashes, so lengths leak nothing either. */
function credsMatch(creds: Credentials, user: string, password: string): boolean {
  const h = (s: string): Buffer => createHash('sha256').update(s).digest()
  const userOk = timingSafeEqual(h(user), h(creds.username))
  const passOk = timingSafeEqual(h(password), h(creds.password))
  return userOk && passOk
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw new Error(`request body over ${limit} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** close() waits for keep-alive sockets to go idle; clients may hold them open, so cut them. */
async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  server.closeAllConnections()
  await closed
}
