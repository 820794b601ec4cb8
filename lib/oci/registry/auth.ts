import { z } from 'zod'
import { CofferError } from '../../util/errors.js'
import { readAllLimited, type Io } from '../../util/io.js'
import { MAX_TOKEN_RESPONSE_BYTES } from '../../util/limits.js'
import type { Challenge } from './challenge.js'
import type { Credentials } from './credentials.js'
import type { HttpTransport } from './http.js'

/** c/image raises short token lifetimes to 60 s, and so do we; renew 10 s early. */
const MIN_TOKEN_LIFETIME_S = 60
const RENEW_EARLY_MS = 10_000
const CLIENT_ID = 'coffer'

const tokenResponseSchema = z.looseObject({
  token: z.string().optional(),
  access_token: z.string().optional(),
  expires_in: z.number().optional(),
  issued_at: z.string().optional(),
  refresh_token: z.string().optional(),
})

/**
 * Authentication against one registry host, shared by every repository on it: Basic credentials,
 * or Bearer tokens from the challenge's realm (distribution `docs/spec/auth/token.md`), cached per
 * scope set until shortly before they expire. The scheme is learned from the first 401 (or the
 * `/v2/` ping), after which requests carry credentials up front.
 */
export class Authenticator {
  private challenge: Challenge | undefined
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>()
  private credentials: Promise<Credentials | undefined> | undefined

  constructor(
    private readonly host: string,
    private readonly loadCredentials: () => Promise<Credentials | undefined>,
    private readonly http: HttpTransport,
    private readonly allowInsecureRealm: boolean,
  ) {}

  /** Remembers the challenge of a 401 (or a ping). Returns false when there is nothing to answer it with. */
  learn(challenges: readonly Challenge[]): boolean {
    const usable =
      challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic')
    if (!usable) return false
    this.challenge = usable
    return true
  }

  get scheme(): string | undefined {
    return this.challenge?.scheme
  }

  /** The Authorization header for a request needing `scopes`, or undefined while no challenge is known. */
  async authorization(scopes: readonly string[], o: Io = {}): Promise<string | undefined> {
    const challenge = this.challenge
    if (!challenge) return undefined
    const creds = await this.creds()
    if (challenge.scheme === 'basic') {
      if (!creds || !('username' in creds)) return undefined
      return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`
    }
    const key = [...new Set(scopes)].sort().join(' ')
    const cached = this.tokens.get(key)
    if (cached && cached.expiresAt - RENEW_EARLY_MS > Date.now()) return `Bearer ${cached.token}`
    const fresh = await this.fetchToken(challenge, [...new Set(scopes)].sort(), creds, o)
    this.tokens.set(key, fresh)
    return `Bearer ${fresh.token}`
  }

  /** Drops cached tokens for these scopes (after a 401 with a token we thought valid). */
  forget(scopes: readonly string[]): void {
    this.tokens.delete([...new Set(scopes)].sort().join(' '))
  }

  async hasCredentials(): Promise<boolean> {
    return (await this.creds()) !== undefined
  }

  private creds(): Promise<Credentials | undefined> {
    this.credentials ??= this.loadCredentials()
    return this.credentials
  }

  private async fetchToken(
    challenge: Challenge,
    scopes: string[],
    creds: Credentials | undefined,
    o: Io,
  ): Promise<{ token: string; expiresAt: number }> {
    const realm = challenge.params.realm
    if (!realm) throw this.protocolError('its Bearer challenge has no realm')
    let url: URL
    try {
      url = new URL(realm)
    } catch {
      throw this.protocolError(`its token realm "${realm}" is not a URL`)
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw this.protocolError(`its token realm "${realm}" is not http(s)`)
    if (url.protocol === 'http:' && creds && !this.allowInsecureRealm && !isLoopbackHostname(url.hostname)) {
      // Credentials over plain HTTP to a non-local host would be readable on the wire.
      throw new CofferError(
        'ERR_REGISTRY_TLS',
        `${this.host}: refusing to send credentials to the plain-HTTP token service ${url.origin} (use --tls-verify=false to allow)`,
      )
    }
    const service = challenge.params.service
    const headers: Record<string, string> = { accept: 'application/json' }
    let method: 'GET' | 'POST' = 'GET'
    let body: string | undefined
    if (creds && 'identityToken' in creds) {
      // OAuth2 refresh-token grant (distribution `docs/spec/auth/oauth.md`).
      method = 'POST'
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.identityToken,
        client_id: CLIENT_ID,
      })
      if (service) form.set('service', service)
      if (scopes.length) form.set('scope', scopes.join(' '))
      body = form.toString()
      headers['content-type'] = 'application/x-www-form-urlencoded'
    } else {
      if (service) url.searchParams.set('service', service)
      for (const scope of scopes) url.searchParams.append('scope', scope)
      if (creds) {
        url.searchParams.set('account', creds.username)
        headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`
      }
    }
    const res = await this.http.send({
      method,
      url,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    })
    const text = await readAllLimited(res.body, MAX_TOKEN_RESPONSE_BYTES, `token response from ${url.origin}`)
    if (res.status === 401 || res.status === 403) {
      throw new CofferError(
        'ERR_REGISTRY_UNAUTHORIZED',
        creds
          ? `authentication to ${this.host} failed: the token service ${url.origin} rejected the credentials`
          : `${this.host} requires authentication: give --creds USER:PASSWORD or log in (auth.json)`,
      )
    }
    if (res.status !== 200)
      throw this.protocolError(`its token service ${url.origin} answered HTTP ${res.status}`)
    let json: unknown
    try {
      json = JSON.parse(text.toString('utf8'))
    } catch {
      throw this.protocolError(`its token service ${url.origin} did not answer JSON`)
    }
    const parsed = tokenResponseSchema.safeParse(json)
    const token = parsed.success ? (parsed.data.token ?? parsed.data.access_token) : undefined
    if (!parsed.success || !token)
      throw this.protocolError(`its token service ${url.origin} answered without a token`)
    const lifetime = Math.max(parsed.data.expires_in ?? MIN_TOKEN_LIFETIME_S, MIN_TOKEN_LIFETIME_S)
    const issued = parsed.data.issued_at ? Date.parse(parsed.data.issued_at) : NaN
    const start = Number.isFinite(issued) && issued <= Date.now() ? issued : Date.now()
    return { token, expiresAt: start + lifetime * 1000 }
  }

  private protocolError(what: string): CofferError {
    return new CofferError('ERR_REGISTRY_PROTOCOL', `${this.host}: ${what}`)
  }
}

/** 127.0.0.0/8, ::1 and localhost: traffic that never leaves the machine. */
export function isLoopbackHostname(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return (
    h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
  )
}
