import { CofferError } from '../../util/errors.js'
import { readAllLimited, type Io } from '../../util/io.js'
import { MAX_REGISTRY_ERROR_BYTES } from '../../util/limits.js'
import { Authenticator, isLoopbackHostname } from './auth.js'
import { parseChallenges } from './challenge.js'
import type { Credentials } from './credentials.js'
import {
  createHttpTransport,
  discard,
  header,
  networkError,
  type HttpRequest,
  type HttpResponse,
  type HttpTransport,
} from './http.js'
import {
  backoffDelay,
  DEFAULT_RETRY,
  isRetryableNetworkError,
  isRetryableStatus,
  waitFor,
  type RetryPolicy,
} from './retry.js'

export interface RegistryOptions {
  /** Verify TLS certificates; false also allows falling back to plain HTTP (skopeo `--tls-verify=false`). */
  tlsVerify?: boolean
  /** Looked up lazily, on the first challenge, so anonymous registries never read auth files. */
  credentials?: () => Promise<Credentials | undefined>
  retry?: RetryPolicy
  userAgent?: string
  /** Told about every retry, for progress output. */
  onRetry?: (info: { url: string; attempt: number; delayMs: number; reason: string }) => void
}

/** A request to the registry's API: scopes say which token it needs. */
export interface ApiRequest extends Omit<HttpRequest, 'url'> {
  /** Absolute path below the registry root (`/v2/...`) or an absolute URL (upload locations). */
  path: string | URL
  /** Token scopes, e.g. `repository:library/alpine:pull`. */
  scopes: readonly string[]
  /** Whether the request may be sent again after a dropped connection or a 5xx (default: true). */
  idempotent?: boolean
}

const MAX_REDIRECTS = 5

/**
 * One registry host speaking the OCI distribution API: scheme discovery (`/v2/` ping), auth
 * challenges, retries with backoff on 5xx/429/dropped connections, redirects. Repository-level
 * operations live in `repository.ts`; this is the transport they share.
 */
export class Registry {
  readonly host: string
  private readonly http: HttpTransport
  private readonly auth: Authenticator
  private readonly retry: RetryPolicy
  private base: Promise<URL> | undefined

  constructor(
    host: string,
    private readonly o: RegistryOptions = {},
  ) {
    this.host = host
    const tlsVerify = o.tlsVerify ?? true
    this.http = createHttpTransport({ tlsVerify, userAgent: o.userAgent ?? 'coffer' })
    this.auth = new Authenticator(host, o.credentials ?? (async () => undefined), this.http, !tlsVerify)
    this.retry = o.retry ?? DEFAULT_RETRY
  }

  /** The registry's base URL, found by pinging `/v2/` over HTTPS, then plain HTTP where allowed. */
  baseUrl(o: Io = {}): Promise<URL> {
    this.base ??= this.ping(o).catch((err: unknown) => {
      this.base = undefined
      throw err
    })
    return this.base
  }

  private async ping(o: Io): Promise<URL> {
    const hostname = this.host.replace(/:\d+$/, '')
    const plainAllowed = this.o.tlsVerify === false || isLoopbackHostname(hostname)
    const schemes = plainAllowed ? ['https', 'http'] : ['https']
    let firstError: unknown
    for (const scheme of schemes) {
      const base = new URL(`${scheme}://${this.host}/`)
      try {
        const res = await this.exchange({ method: 'GET', url: new URL('/v2/', base), ...o }, true)
        await discard(res)
        if (res.status === 401) this.auth.learn(parseChallenges(res.headers['www-authenticate']))
        else if (res.status !== 200) {
          throw new CofferError(
            'ERR_REGISTRY_PROTOCOL',
            `${this.host} is not an OCI registry: GET /v2/ answered HTTP ${res.status}`,
          )
        }
        return base
      } catch (err) {
        if (
          err instanceof CofferError &&
          err.code !== 'ERR_REGISTRY_UNREACHABLE' &&
          err.code !== 'ERR_REGISTRY_TLS'
        )
          throw err
        firstError ??= err
      }
    }
    throw firstError
  }

  /**
   * Sends an API request with auth, retries and redirects. Returns any final status; the caller
   * decides what a 404 means. A 401 after answering the challenge is ERR_REGISTRY_UNAUTHORIZED.
   */
  async request(req: ApiRequest): Promise<HttpResponse> {
    const base = await this.baseUrl(req)
    let url = typeof req.path === 'string' ? new URL(req.path, base) : req.path
    let scopes = req.scopes
    let answeredChallenge = false
    for (let redirects = 0; ;) {
      const sameOrigin = url.origin === base.origin
      const authorization = sameOrigin ? await this.auth.authorization(scopes, req) : undefined
      const headers = { ...req.headers, ...(authorization ? { authorization } : {}) }
      const res = await this.exchange({ ...req, url, headers }, req.idempotent ?? true)

      if (res.status === 401 && sameOrigin) {
        // Answer a challenge once: learn the scheme (and any scope the registry asks for), then retry.
        await discard(res)
        const challenges = parseChallenges(res.headers['www-authenticate'])
        const retryable =
          !answeredChallenge &&
          this.auth.learn(challenges) &&
          (this.auth.scheme === 'bearer' || (!authorization && (await this.auth.hasCredentials())))
        if (!retryable) throw await this.unauthorized()
        answeredChallenge = true
        this.auth.forget(scopes)
        const wanted = challenges.find((c) => c.scheme === 'bearer')?.params.scope
        if (wanted) scopes = [...new Set([...scopes, ...wanted.split(' ')])]
        continue
      }
      if (
        (res.status === 301 ||
          res.status === 302 ||
          res.status === 303 ||
          res.status === 307 ||
          res.status === 308) &&
        (req.method === 'GET' || req.method === 'HEAD')
      ) {
        const location = header(res, 'location')
        await discard(res)
        if (!location || ++redirects > MAX_REDIRECTS) {
          throw new CofferError(
            'ERR_REGISTRY_PROTOCOL',
            `${this.host}: too many or empty redirects for ${url.pathname}`,
          )
        }
        url = new URL(location, url)
        continue
      }
      return res
    }
  }

  /** One exchange with retries on dropped connections and transient statuses. */
  private async exchange(req: HttpRequest, idempotent: boolean): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      const last = !idempotent || attempt + 1 >= this.retry.attempts
      let res: HttpResponse
      try {
        res = await this.http.send(req)
      } catch (err) {
        if (last || !isRetryableNetworkError(err) || req.signal?.aborted) throw networkError(this.host, err)
        await this.backoff(req, attempt, undefined, (err as Error).message)
        continue
      }
      if (!last && isRetryableStatus(res.status)) {
        await discard(res)
        await this.backoff(req, attempt, header(res, 'retry-after'), `HTTP ${res.status}`)
        continue
      }
      return res
    }
  }

  private async backoff(
    req: HttpRequest,
    attempt: number,
    retryAfter: string | undefined,
    reason: string,
  ): Promise<void> {
    const delayMs = backoffDelay(this.retry, attempt, retryAfter)
    this.o.onRetry?.({ url: req.url.toString(), attempt: attempt + 1, delayMs, reason })
    await waitFor(delayMs, req.signal)
  }

  private async unauthorized(): Promise<CofferError> {
    return new CofferError(
      'ERR_REGISTRY_UNAUTHORIZED',
      (await this.auth.hasCredentials())
        ? `authentication to registry ${this.host} failed: the credentials were rejected`
        : `registry ${this.host} requires authentication: give --creds USER:PASSWORD, --authfile FILE, or log in (auth.json)`,
    )
  }

  /** Turns an unexpected answer into a coded error carrying the registry's own error codes. */
  async fail(res: HttpResponse, what: string): Promise<CofferError> {
    const body = await readAllLimited(res.body, MAX_REGISTRY_ERROR_BYTES, 'error body').catch(() =>
      Buffer.alloc(0),
    )
    let detail = ''
    let registryCodes: string[] = []
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown; message?: unknown }[] }
      const errors = (parsed.errors ?? []).slice(0, 3)
      registryCodes = errors.flatMap((e) => (typeof e.code === 'string' ? [e.code] : []))
      detail = errors
        .map((e) => [e.code, e.message].filter((x) => typeof x === 'string' && x).join(': '))
        .join('; ')
    } catch {
      // Not JSON: the status says enough.
    }
    const message = `${what}: ${this.host} answered HTTP ${res.status}${detail ? ` (${detail.slice(0, 300)})` : ''}`
    // The registry's own integrity verdicts are ours too: the content did not match its digest.
    const code = registryCodes.includes('DIGEST_INVALID')
      ? 'ERR_OCI_DIGEST_MISMATCH'
      : registryCodes.includes('SIZE_INVALID')
        ? 'ERR_OCI_SIZE_MISMATCH'
        : res.status === 401
          ? 'ERR_REGISTRY_UNAUTHORIZED'
          : res.status === 403
            ? 'ERR_REGISTRY_DENIED'
            : res.status === 404
              ? 'ERR_REGISTRY_NOT_FOUND'
              : res.status === 429
                ? 'ERR_REGISTRY_RATE_LIMITED'
                : res.status >= 500
                  ? 'ERR_REGISTRY_SERVER'
                  : 'ERR_REGISTRY_PROTOCOL'
    return new CofferError(code, message)
  }

  /** Waits like a retry would; for callers that resume (downloads, uploads). */
  pause(attempt: number, o: Io = {}): Promise<void> {
    return waitFor(backoffDelay(this.retry, attempt), o.signal)
  }

  async close(): Promise<void> {
    await this.http.close()
  }
}
