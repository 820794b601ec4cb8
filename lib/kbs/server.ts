/**
 * The KBS HTTP application (fastify): trustee's `/kbs/v0` API — RCAR (auth, attest), resources
 * released as JWE to the attested session key, and the admin API — plus /metrics and /healthz.
 *
 * Every request body is read as bytes under one size limit and parsed here with zod, so malformed
 * input of any kind gets the protocol's error body. Paths are checked on the raw URL
 * (kbs-path.ts). Logs carry decisions and ids, never tokens, keys, cookies or resource bytes.
 */
import { createHash, type KeyObject } from 'node:crypto'
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify'
import type { Verifier } from '../attest/types.js'
import { CofferError } from '../util/errors.js'
import { verifyAdminToken } from './admin-auth.js'
import { AttestationService } from './attestation-service.js'
import { teePubKeyOf, verifyEarToken, type EarClaims, type TokenSigner } from './ear-token.js'
import { KbsError, toKbsError } from './kbs-error.js'
import { parseKbsPath, type KbsPath } from './kbs-path.js'
import { generateSecret, manifestPolicy, parseManifest } from './manifest.js'
import { createKbsMetrics, type KbsMetrics } from './metrics.js'
import {
  AttestationSchema,
  AuthRequestSchema,
  KBS_PROTOCOL_VERSION,
  SESSION_COOKIE,
  TeePubKeySchema,
  isKnownTee,
  type Challenge,
} from './protocol.js'
import { parseRvpsMessage, ReferenceValueStore } from './reference-values.js'
import { encryptResource } from './resource-jwe.js'
import { ResourcePolicy } from './resource-policy.js'
import { SESSION_ID, SessionStore } from './sessions.js'
import type { KbsStore } from './store.js'

export const RESOURCE_POLICY_KEY = 'resource-policy'
const MANIFEST_KEY = 'manifest'
/** Resources the KBS generated from the manifest: locked against the admin API. */
const GENERATED_SECRETS_KEY = 'manifest-generated'
/** Public halves of generated key pairs, path → PEM: shown to administrators, who never see the private ones. */
const PUBLIC_KEYS_KEY = 'manifest-public-keys'

export interface KbsAppOptions {
  /** Resources, policy and reference values. */
  store: KbsStore
  /** Protocol sessions (default: `store`); a memory store for a single replica saves a write per handshake. */
  sessionStore?: KbsStore
  verifiers: ReadonlyMap<string, Verifier>
  signer: TokenSigner
  adminKeys: readonly KeyObject[]
  sessionTimeoutS: number
  tokenLifetimeS: number
  bodyLimit: number
  /** Set `Secure` on the session cookie (served over TLS). */
  secureCookie?: boolean
  build: string
  logger?: FastifyServerOptions['logger']
  https?: { cert: Buffer; key: Buffer }
}

type Handler = (req: FastifyRequest, reply: FastifyReply, path: KbsPath) => Promise<unknown>

declare module 'fastify' {
  interface FastifyRequest {
    kbsRoute?: string
  }
}

export async function createKbsApp(o: KbsAppOptions): Promise<FastifyInstance & { metrics: KbsMetrics }> {
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: o.bodyLimit,
    // Requests are logged by the handlers, with decisions and without headers.
    logController: new LogController({ disableRequestLogging: true }),
    // A URL the router cannot even decode (e.g. a lone `%`) is a bad path, answered like any other.
    frameworkErrors: (_err: Error, _req: unknown, reply: FastifyReply) => {
      const e = new KbsError('InvalidRequestPath', 'invalid request path')
      void reply.status(e.status).header('content-type', 'application/json').send(e.body())
    },
    ...(o.https ? { https: o.https } : {}),
  } as FastifyServerOptions) as unknown as FastifyInstance
  const metrics = createKbsMetrics()
  const sessions = new SessionStore(o.sessionStore ?? o.store, o.sessionTimeoutS * 1000)
  const referenceValues = new ReferenceValueStore(o.store)
  const attestation = new AttestationService({
    verifiers: o.verifiers,
    referenceValues,
    signer: o.signer,
    tokenLifetimeS: o.tokenLifetimeS,
    build: o.build,
    onInsecureVerifier: (tee) =>
      app.log.warn(
        { tee },
        'attestation with the sample verifier: this evidence proves nothing (allow_sample is on)',
      ),
  })
  const policyCache = new PolicyCache()

  // Bodies are bytes; each handler parses what it expects.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))

  app.addHook('onResponse', async (req, reply) => {
    const route = req.kbsRoute ?? 'unknown'
    metrics.requests.inc({ route, status: String(reply.statusCode) })
    metrics.duration.observe({ route }, reply.elapsedTime / 1000)
  })

  app.setErrorHandler((err, req, reply) => {
    const fastifyCode = (err as { code?: string }).code
    const kbsErr =
      fastifyCode === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? new KbsError('PayloadTooLarge', `the request body exceeds ${o.bodyLimit} bytes`)
        : fastifyCode?.startsWith('FST_ERR_CTP')
          ? new KbsError('SerdeError', 'the request body could not be read')
          : toKbsError(err, 'InternalError')
    if (kbsErr.status >= 500)
      req.log.error({ err: kbsErr.cause ?? err, route: req.kbsRoute }, 'request failed')
    else req.log.info({ route: req.kbsRoute, type: kbsErr.type, detail: kbsErr.detail }, 'request refused')
    return reply.status(kbsErr.status).header('content-type', 'application/json').send(kbsErr.body())
  })
  app.setNotFoundHandler((req, reply) => {
    req.kbsRoute = 'not-found'
    const e = new KbsError('InvalidRequestPath', 'no such endpoint')
    return reply.status(e.status).send(e.body())
  })

  app.get('/healthz', async (req) => {
    req.kbsRoute = 'healthz'
    return { status: 'ok' }
  })
  app.get('/metrics', async (req, reply) => {
    req.kbsRoute = 'metrics'
    return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics())
  })

  // ---- RCAR ----

  const auth: Handler = async (req, reply) => {
    const body = AuthRequestSchema.safeParse(parseJson(req.body))
    if (!body.success) throw new KbsError('SerdeError', 'expected {"version","tee","extra-params"}')
    if (body.data.version !== KBS_PROTOCOL_VERSION)
      throw new KbsError(
        'AttestationError',
        `KBS Client Protocol Version Mismatch: expect ${KBS_PROTOCOL_VERSION}, got ${body.data.version.slice(0, 32)}`,
      )
    const tee = body.data.tee
    if (!isKnownTee(tee)) throw new KbsError('AttestationError', `unknown TEE "${tee.slice(0, 32)}"`)
    if (!o.verifiers.has(tee))
      throw new KbsError('AttestationError', `TEE "${tee}" is not enabled on this KBS`)
    const { id, session } = await sessions.create(tee, 'sha384')
    setSessionCookie(reply, id, session.expiresAt)
    const challenge: Challenge = { nonce: session.nonce, 'extra-params': '' }
    return challenge
  }

  const attest: Handler = async (req, reply) => {
    const id = sessionIdFrom(req)
    if (!id) throw new KbsError('AttestationError', 'no session: call /auth first (cookie kbs-session-id)')
    const body = AttestationSchema.safeParse(parseJson(req.body))
    if (!body.success)
      throw new KbsError('SerdeError', `malformed attestation: ${body.error.issues[0]?.path.join('.') ?? ''}`)
    // Consuming first makes the nonce single-use, even under concurrent requests.
    const session = await sessions.consume(id)
    if (!session) throw new KbsError('AttestationError', 'session not found, expired or already used')
    try {
      const { token, claims } = await attestation.attest(session, body.data)
      await sessions.markAttested(id, session, token)
      metrics.attestations.inc({ tee: session.tee, result: 'success' })
      req.log.info(
        { tee: session.tee, status: claims.submods.cpu0['ear.status'], jti: claims.jti },
        'attested',
      )
      setSessionCookie(reply, id, session.expiresAt)
      return { token }
    } catch (err) {
      metrics.attestations.inc({ tee: session.tee, result: 'failure' })
      throw toKbsError(err, 'AttestationError')
    }
  }

  // ---- resources ----

  const getResource: Handler = async (req, _reply, path) => {
    const [repository, type, tag] = resourcePathOf(path)
    const claims = await tokenClaims(req)
    const policy = await policyCache.get(o.store)
    if (!policy) {
      metrics.resources.inc({ result: 'denied' })
      throw new KbsError('PolicyDeny', 'no resource policy is set on this KBS: every request is denied')
    }
    const decision = policy.evaluate(claims, { repository, type, tag })
    req.log.info(
      {
        resource: `${repository}/${type}/${tag}`,
        allow: decision.allow,
        reason: decision.reason,
        jti: claims.jti,
      },
      'resource decision',
    )
    if (!decision.allow) {
      metrics.resources.inc({ result: 'denied' })
      throw new KbsError('PolicyDeny', `resource policy: ${decision.reason}`)
    }
    const value = await o.store.get('resource', `${repository}/${type}/${tag}`)
    if (!value) {
      metrics.resources.inc({ result: 'not_found' })
      throw new KbsError('ResourceNotFound', `resource ${repository}/${type}/${tag} does not exist`)
    }
    const key = TeePubKeySchema.safeParse(teePubKeyOf(claims))
    if (!key.success) throw new KbsError('TokenVerifierError', 'the token carries no usable tee-pubkey')
    try {
      const jwe = encryptResource(value, key.data)
      metrics.resources.inc({ result: 'released' })
      return jwe
    } catch (err) {
      throw new KbsError(
        'JweError',
        err instanceof CofferError ? err.message : 'cannot encrypt to the tee-pubkey',
        { cause: err },
      )
    }
  }

  const putResource: Handler = async (req, _reply, path) => {
    await admin(req)
    const [repository, type, tag] = resourcePathOf(path)
    await refuseIfGenerated(`${repository}/${type}/${tag}`)
    const body = req.body
    if (!Buffer.isBuffer(body))
      throw new KbsError('SerdeError', 'the resource must be sent as the request body')
    await o.store.put('resource', `${repository}/${type}/${tag}`, body)
    req.log.info({ resource: `${repository}/${type}/${tag}`, bytes: body.length }, 'resource set')
    return ''
  }

  const deleteResource: Handler = async (req, _reply, path) => {
    await admin(req)
    const [repository, type, tag] = resourcePathOf(path)
    await refuseIfGenerated(`${repository}/${type}/${tag}`)
    if (!(await o.store.delete('resource', `${repository}/${type}/${tag}`)))
      throw new KbsError('ResourceNotFound', `resource ${repository}/${type}/${tag} does not exist`)
    req.log.info({ resource: `${repository}/${type}/${tag}` }, 'resource deleted')
    return ''
  }

  const listResources: Handler = async (req) => {
    await admin(req)
    return { resources: await o.store.list('resource') }
  }

  // ---- policy and reference values (admin) ----

  const setPolicy: Handler = async (req) => {
    await admin(req)
    const body = parseJson(req.body) as { policy?: unknown } | undefined
    if (typeof body?.policy !== 'string' || !/^[A-Za-z0-9_-]*$/.test(body.policy))
      throw new KbsError('SerdeError', 'expected {"policy": "<base64url of the policy document>"}')
    const text = Buffer.from(body.policy, 'base64url').toString('utf8')
    try {
      ResourcePolicy.parse(text)
    } catch (err) {
      throw toKbsError(err, 'ParsePolicyError')
    }
    await o.store.put('policy', RESOURCE_POLICY_KEY, Buffer.from(text, 'utf8'))
    req.log.info({ sha256: createHash('sha256').update(text).digest('hex') }, 'resource policy set')
    return ''
  }

  const getPolicy: Handler = async (req) => {
    await admin(req)
    const raw = await o.store.get('policy', RESOURCE_POLICY_KEY)
    if (!raw) throw new KbsError('ResourceNotFound', 'no resource policy is set')
    return { policy: Buffer.from(raw).toString('base64url') }
  }

  const setReferenceValues: Handler = async (req) => {
    await admin(req)
    let values
    try {
      values = parseRvpsMessage(parseJson(req.body))
    } catch (err) {
      throw toKbsError(err, 'RvpsError')
    }
    await referenceValues.set(values)
    req.log.info({ names: [...values.keys()] }, 'reference values set')
    return ''
  }

  const getReferenceValue: Handler = async (req, _reply, path) => {
    await admin(req)
    const [name] = path.rest
    if (path.rest.length !== 1 || !name)
      throw new KbsError('InvalidRequestPath', 'expected /reference-value/<name>')
    const v = await referenceValues.getOne(name)
    if (!v) throw new KbsError('ResourceNotFound', `no reference value "${name}"`)
    return v
  }

  // ---- workload manifest (admin) ----

  const applyManifest: Handler = async (req) => {
    await admin(req)
    const body = req.body
    if (!Buffer.isBuffer(body))
      throw new KbsError('SerdeError', 'the manifest must be sent as the request body')
    let manifest, policy
    try {
      manifest = parseManifest(body.toString('utf8'))
      policy = manifestPolicy(manifest)
    } catch (err) {
      throw toKbsError(err, 'ParsePolicyError')
    }
    const locked = new Set(await generatedSecrets())
    const publicKeys = await storedJson<Record<string, string>>(PUBLIC_KEYS_KEY, {})
    const generated: string[] = []
    for (const [path, spec] of Object.entries(manifest.secrets)) {
      const secret = generateSecret(spec)
      // Never replaces: a secret generated once stays what every workload already got.
      if (await o.store.putIfAbsent('resource', path, secret.value)) {
        generated.push(path)
        if (secret.publicKey) publicKeys[path] = secret.publicKey
        else delete publicKeys[path]
      } else if (!locked.has(path)) {
        throw new KbsError(
          'ParsePolicyError',
          `secret ${path} already exists as an ordinary resource: delete it first, or name the secret differently`,
        )
      }
      locked.add(path)
    }
    await o.store.put('policy', PUBLIC_KEYS_KEY, Buffer.from(JSON.stringify(publicKeys)))
    await o.store.put('policy', GENERATED_SECRETS_KEY, Buffer.from(JSON.stringify([...locked].sort())))
    await o.store.put('policy', MANIFEST_KEY, body)
    await o.store.put('policy', RESOURCE_POLICY_KEY, Buffer.from(JSON.stringify(policy)))
    req.log.info({ workloads: Object.keys(manifest.workloads), generated }, 'manifest applied')
    const shown = Object.fromEntries(
      Object.keys(manifest.secrets)
        .filter((p) => publicKeys[p])
        .map((p) => [p, publicKeys[p]!]),
    )
    return { workloads: Object.keys(manifest.workloads), generated, publicKeys: shown, policy }
  }

  const getManifest: Handler = async (req) => {
    await admin(req)
    const raw = await o.store.get('policy', MANIFEST_KEY)
    if (!raw) throw new KbsError('ResourceNotFound', 'no manifest has been applied')
    return JSON.parse(Buffer.from(raw).toString('utf8')) as unknown
  }

  async function storedJson<T>(key: string, fallback: T): Promise<T> {
    const raw = await o.store.get('policy', key)
    return raw ? (JSON.parse(Buffer.from(raw).toString('utf8')) as T) : fallback
  }

  async function generatedSecrets(): Promise<string[]> {
    return storedJson<string[]>(GENERATED_SECRETS_KEY, [])
  }

  async function refuseIfGenerated(path: string): Promise<void> {
    if ((await generatedSecrets()).includes(path))
      throw new KbsError(
        'AdminAuthAccess',
        `resource ${path} was generated by the KBS from the manifest and cannot be replaced or deleted`,
      )
  }

  const routes: Record<string, Partial<Record<string, Handler>>> = {
    auth: { POST: auth },
    attest: { POST: attest },
    resource: { GET: getResource, POST: putResource, PUT: putResource, DELETE: deleteResource },
    resources: { GET: listResources },
    'resource-policy': { POST: setPolicy, GET: getPolicy },
    'reference-value': { POST: setReferenceValues, GET: getReferenceValue },
    manifest: { POST: applyManifest, GET: getManifest },
  }

  app.route({
    method: ['GET', 'POST', 'PUT', 'DELETE'],
    url: '/kbs/v0/*',
    handler: async (req, reply) => {
      const path = parseKbsPath(req.raw.url ?? '')
      if (!path) {
        req.kbsRoute = 'invalid'
        throw new KbsError('InvalidRequestPath', 'invalid request path')
      }
      const handler = routes[path.endpoint]?.[req.method]
      req.kbsRoute = routes[path.endpoint] ? `${req.method} ${path.endpoint}` : 'unknown-plugin'
      if (!routes[path.endpoint]) throw new KbsError('PluginNotFound', `no plugin "${path.endpoint}"`)
      if (!handler)
        throw new KbsError('InvalidRequestPath', `${req.method} is not supported on /${path.endpoint}`)
      const out = await handler(req, reply, path)
      if (out === '') return reply.status(200).send()
      return reply.header('content-type', 'application/json').send(JSON.stringify(out))
    },
  })

  async function admin(req: FastifyRequest): Promise<void> {
    if (o.adminKeys.length === 0)
      throw new KbsError('AdminAuthAccess', 'the admin API is disabled (no admin public keys configured)')
    try {
      await verifyAdminToken(req.headers.authorization, o.adminKeys)
    } catch (err) {
      throw new KbsError(
        'AdminAuthAccess',
        err instanceof CofferError ? err.message : 'admin authentication failed',
      )
    }
  }

  /** The session cookie's token wins; otherwise a Bearer token (trustee's order). Verified every time. */
  async function tokenClaims(req: FastifyRequest): Promise<EarClaims> {
    let token: string | undefined
    const id = sessionIdFrom(req)
    if (id) {
      const s = await sessions.get(id)
      if (s?.state === 'attested') token = s.token
    }
    if (!token) {
      const m = /^Bearer (\S{1,65536})$/.exec(req.headers.authorization ?? '')
      token = m?.[1]
    }
    if (!token)
      throw new KbsError(
        'TokenNotFound',
        'no attestation token: attest first, or send "Authorization: Bearer <token>"',
      )
    try {
      return await verifyEarToken(token, o.signer.publicKey)
    } catch (err) {
      throw new KbsError(
        'TokenVerifierError',
        err instanceof CofferError ? err.message : 'the token is not valid',
      )
    }
  }

  function setSessionCookie(reply: FastifyReply, id: string, expiresAt: number): void {
    const attrs = [
      `${SESSION_COOKIE}=${id}`,
      `Expires=${new Date(expiresAt).toUTCString()}`,
      'HttpOnly',
      'SameSite=Strict',
    ]
    if (o.secureCookie) attrs.push('Secure')
    reply.header('set-cookie', attrs.join('; '))
  }

  return Object.assign(app, { metrics })
}

function resourcePathOf(path: KbsPath): [string, string, string] {
  if (path.rest.length !== 3)
    throw new KbsError('InvalidRequestPath', 'a resource path is /resource/<repository>/<type>/<tag>')
  return path.rest as [string, string, string]
}

function parseJson(body: unknown): unknown {
  if (!Buffer.isBuffer(body) || body.length === 0) return undefined
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw new KbsError('SerdeError', 'the request body is not valid JSON')
  }
}

function sessionIdFrom(req: FastifyRequest): string | undefined {
  const header = req.headers.cookie
  if (!header || header.length > 8192) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq === -1) continue
    if (part.slice(0, eq).trim() === SESSION_COOKIE) {
      const v = part.slice(eq + 1).trim()
      return SESSION_ID.test(v) ? v : undefined
    }
  }
  return undefined
}

/** The compiled policy, re-parsed only when the stored document changes (replicas may change it). */
class PolicyCache {
  private digest = ''
  private policy: ResourcePolicy | undefined

  async get(store: KbsStore): Promise<ResourcePolicy | undefined> {
    const raw = await store.get('policy', RESOURCE_POLICY_KEY)
    if (!raw) return undefined
    const digest = createHash('sha256').update(raw).digest('hex')
    if (digest !== this.digest) {
      try {
        this.policy = ResourcePolicy.parse(Buffer.from(raw).toString('utf8'))
      } catch {
        // A stored policy that no longer parses denies everything rather than failing open.
        this.policy = undefined
        throw new KbsError('PolicyDeny', 'the stored resource policy is invalid: every request is denied')
      }
      this.digest = digest
    }
    return this.policy
  }
}
