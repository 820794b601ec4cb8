/**
 * KBS client (the guest side of RCAR, like guest-components' kbs_protocol): attests with an
 * Attester, caches the token until shortly before it expires, and fetches resources, which arrive
 * encrypted to a session key that never leaves this process. A fresh key pair is made for every
 * handshake. 401 answers redo the handshake (the token may have expired or the KBS restarted);
 * network failures and 5xx are retried with backoff.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { flattenedDecrypt } from 'jose'
import { runtimeDataDigest, type ReportDataHash } from '../attest/report-data.js'
import type { Attester } from '../attest/types.js'
import { CofferError } from '../util/errors.js'
import type { Io } from '../util/io.js'
import { readAllLimited } from '../util/io.js'
import { MiB } from '../util/limits.js'
import { createHttpTransport, header, type HttpResponse, type HttpTransport } from '../oci/registry/http.js'
import {
  backoffDelay,
  DEFAULT_RETRY,
  isRetryableNetworkError,
  isRetryableStatus,
  waitFor,
  type RetryPolicy,
} from '../oci/registry/retry.js'
import {
  JweResponseSchema,
  KBS_PROTOCOL_VERSION,
  SESSION_COOKIE,
  AttestResponseSchema,
  type TeePubKey,
} from './protocol.js'
import { kbsHttpError } from './http-error.js'
import { parseResourceUri, resourcePath, type ResourceUri } from './resource-uri.js'

const MAX_RESPONSE_BYTES = 4 * MiB
/** Refresh a token this long before it expires, so a request never races its expiry. */
const TOKEN_SKEW_MS = 10_000

export interface KbsClientOptions {
  /** Base URL of the KBS, e.g. `http://127.0.0.1:8080`. */
  url: string
  attester: Attester
  tlsVerify?: boolean
  retry?: RetryPolicy
  userAgent?: string
  /** Session key type (guest-components default: EC P-256 with ECDH-ES+A256KW). */
  keyType?: 'EC' | 'RSA'
  transport?: HttpTransport
}

interface Attested {
  token: string
  expiresAt: number
  privateKey: KeyObject
}

export class KbsClient {
  private readonly base: URL
  private readonly http: HttpTransport
  private readonly retry: RetryPolicy
  private attested: Attested | undefined
  private pending: Promise<Attested> | undefined

  constructor(private readonly o: KbsClientOptions) {
    try {
      this.base = new URL(o.url)
    } catch {
      throw new CofferError('ERR_INVALID_ARGUMENT', `invalid KBS URL "${o.url}"`)
    }
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:')
      throw new CofferError(
        'ERR_INVALID_ARGUMENT',
        `the KBS URL must be http:// or https://, not ${this.base.protocol}`,
      )
    this.http =
      o.transport ??
      createHttpTransport({ tlsVerify: o.tlsVerify ?? true, userAgent: o.userAgent ?? 'coffer' })
    this.retry = o.retry ?? DEFAULT_RETRY
  }

  /** The TEE this client attests as. */
  get attesterTee(): string {
    return this.o.attester.tee
  }

  /** The attestation token (attesting if needed); usable as `Authorization: Bearer` with any replica. */
  async token(io: Io = {}): Promise<string> {
    return (await this.session(io)).token
  }

  /** A resource's plaintext bytes. `uri` is `kbs:///repo/type/tag` or a parsed URI. */
  async getResource(uri: string | ResourceUri, io: Io = {}): Promise<Uint8Array> {
    const u = typeof uri === 'string' ? parseResourceUri(uri) : uri
    // Trustee's guest tries three times, re-attesting after a 401.
    for (let attempt = 0; ; attempt++) {
      const s = await this.session(io)
      const res = await this.send(
        'GET',
        resourcePath(u),
        { authorization: `Bearer ${s.token}` },
        undefined,
        io,
      )
      if (res.status === 200) {
        const jwe = JweResponseSchema.safeParse(await json(res))
        if (!jwe.success)
          throw new CofferError(
            'ERR_KBS_PROTOCOL',
            'the KBS answered a resource request with something that is not a JWE',
          )
        try {
          const { plaintext } = await flattenedDecrypt(jwe.data, s.privateKey, {
            contentEncryptionAlgorithms: ['A256GCM'],
          })
          return plaintext
        } catch (err) {
          throw new CofferError(
            'ERR_KBS_PROTOCOL',
            'the resource could not be decrypted with the session key',
            { cause: err },
          )
        }
      }
      const err = await kbsError(res, `resource ${u.repository}/${u.type}/${u.tag}`)
      if (res.status === 401 && attempt < 2 && !/PolicyDeny/.test(err.message)) {
        this.attested = undefined
        continue
      }
      throw err
    }
  }

  async close(): Promise<void> {
    if (!this.o.transport) await this.http.close()
  }

  private async session(io: Io): Promise<Attested> {
    if (this.attested && this.attested.expiresAt - TOKEN_SKEW_MS > Date.now()) return this.attested
    // One handshake at a time, shared by concurrent callers.
    this.pending ??= this.handshake(io).finally(() => (this.pending = undefined))
    this.attested = await this.pending
    return this.attested
  }

  private async handshake(io: Io): Promise<Attested> {
    const tee = this.o.attester.tee
    const authRes = await this.send(
      'POST',
      '/kbs/v0/auth',
      { 'content-type': 'application/json' },
      JSON.stringify({
        version: KBS_PROTOCOL_VERSION,
        tee,
        'extra-params': { 'supported-hash-algorithms': ['sha256', 'sha384', 'sha512'] },
      }),
      io,
    )
    if (authRes.status !== 200) throw await kbsError(authRes, 'authentication')
    const cookie = sessionCookie(authRes)
    const challenge = (await json(authRes)) as { nonce?: unknown; 'extra-params'?: unknown }
    if (typeof challenge?.nonce !== 'string' || challenge.nonce.length > 1024)
      throw new CofferError('ERR_KBS_PROTOCOL', 'the KBS challenge has no nonce')
    const hash = selectedHash(challenge['extra-params'])
    const { publicKey, privateKey } =
      this.o.keyType === 'RSA'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    const teePubKey = toTeePubKey(publicKey)
    const runtimeData = { nonce: challenge.nonce, 'tee-pubkey': teePubKey, 'additional-evidence': '' }
    const evidence = await this.o.attester.evidence(
      runtimeDataDigest(runtimeData, hash),
      io.signal ? { signal: io.signal } : {},
    )
    const body = {
      'init-data': null,
      'runtime-data': { nonce: challenge.nonce, 'tee-pubkey': teePubKey },
      'tee-evidence': { primary_evidence: evidence, additional_evidence: '' },
    }
    const attestRes = await this.send(
      'POST',
      '/kbs/v0/attest',
      { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) },
      JSON.stringify(body),
      io,
    )
    if (attestRes.status !== 200) throw await kbsError(attestRes, 'attestation')
    const parsed = AttestResponseSchema.safeParse(await json(attestRes))
    if (!parsed.success) throw new CofferError('ERR_KBS_PROTOCOL', 'the KBS attestation answer has no token')
    return { token: parsed.data.token, expiresAt: tokenExpiry(parsed.data.token), privateKey }
  }

  /** One request, retried on network failures and retryable statuses. */
  private async send(
    method: 'GET' | 'POST',
    path: string,
    headers: Record<string, string>,
    body: string | undefined,
    io: Io,
  ): Promise<HttpResponse> {
    const url = new URL(path, this.base)
    for (let attempt = 0; ; attempt++) {
      let res: HttpResponse
      try {
        res = await this.http.send({
          method,
          url,
          headers: { accept: 'application/json', ...headers },
          ...(body !== undefined ? { body } : {}),
          ...(io.signal ? { signal: io.signal } : {}),
        })
      } catch (err) {
        if (io.signal?.aborted) throw new CofferError('ERR_CANCELED', 'operation canceled', { cause: err })
        if (attempt + 1 < this.retry.attempts && isRetryableNetworkError(err)) {
          await waitFor(backoffDelay(this.retry, attempt), io.signal)
          continue
        }
        throw new CofferError(
          'ERR_KBS_UNREACHABLE',
          `cannot reach the KBS at ${this.base.origin}: ${(err as Error).message}`,
          { cause: err },
        )
      }
      if (isRetryableStatus(res.status) && attempt + 1 < this.retry.attempts) {
        res.body.resume()
        await waitFor(backoffDelay(this.retry, attempt, header(res, 'retry-after')), io.signal)
        continue
      }
      return res
    }
  }
}

async function json(res: HttpResponse): Promise<unknown> {
  const raw = await readAllLimited(res.body, MAX_RESPONSE_BYTES, 'KBS response')
  try {
    return JSON.parse(raw.toString('utf8'))
  } catch {
    throw new CofferError('ERR_KBS_PROTOCOL', 'the KBS answered with invalid JSON')
  }
}

/** Turns a non-200 answer into a coded error carrying the KBS's ErrorInformation. */
async function kbsError(res: HttpResponse, what: string): Promise<CofferError> {
  const body = await readAllLimited(res.body, MAX_RESPONSE_BYTES, 'KBS response').catch(() => Buffer.alloc(0))
  return kbsHttpError(res.status, body, what)
}

function sessionCookie(res: HttpResponse): string | undefined {
  const raw = res.headers['set-cookie']
  for (const c of Array.isArray(raw) ? raw : raw ? [raw] : []) {
    const first = c.split(';')[0]!.trim()
    if (first.startsWith(`${SESSION_COOKIE}=`)) return first
  }
  return undefined
}

function selectedHash(extra: unknown): ReportDataHash {
  const v = (extra as { 'selected-hash-algorithm'?: unknown } | null)?.['selected-hash-algorithm']
  const alg = typeof v === 'string' ? v.toLowerCase() : 'sha384'
  if (alg === 'sha256' || alg === 'sha384' || alg === 'sha512') return alg
  throw new CofferError(
    'ERR_KBS_PROTOCOL',
    `the KBS selected an unsupported hash algorithm "${alg.slice(0, 32)}"`,
  )
}

function toTeePubKey(publicKey: KeyObject): TeePubKey {
  const jwk = publicKey.export({ format: 'jwk' })
  if (jwk.kty === 'RSA') return { kty: 'RSA', alg: 'RSA-OAEP-256', n: jwk.n!, e: jwk.e! }
  return { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: jwk.x!, y: jwk.y! }
}

/** The token's `exp` (not verified here: the KBS verifies it; we only need to know when to renew). */
function tokenExpiry(token: string): number {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      exp?: unknown
    }
    if (typeof payload.exp === 'number') return payload.exp * 1000
  } catch {
    // fall through
  }
  return Date.now() + 60_000
}
