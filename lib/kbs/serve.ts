/**
 * Assembles a KBS from its configuration: store, verifiers, token key, admin keys, initial policy,
 * and starts listening. Plugin lookups are passed in so this module stays free of the plugin list.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import type { PluginSettings, Verifier } from '../attest/types.js'
import { CofferError } from '../util/errors.js'
import { parseAdminPublicKey } from './admin-auth.js'
import type { KbsConfig } from './config.js'
import type { TokenSigner } from './ear-token.js'
import { createMemoryStore } from './memory-store.js'
import { ResourcePolicy } from './resource-policy.js'
import { createKbsApp, RESOURCE_POLICY_KEY } from './server.js'
import type { KbsMetrics } from './metrics.js'
import type { KbsStore } from './store.js'

export interface KbsPlugins {
  verifierNames(): string[]
  createVerifier(name: string, settings: PluginSettings): Verifier
  createStore(type: string, settings: PluginSettings, dataDir: string): Promise<KbsStore>
}

export interface RunningKbs {
  readonly app: FastifyInstance & { metrics: KbsMetrics }
  /** e.g. `http://127.0.0.1:8080` (the real port when 0 was asked for). */
  readonly url: string
  readonly store: KbsStore
  close(): Promise<void>
}

export const SAMPLE_KBS_WARNING =
  'the sample verifier is enabled (allow_sample): any client can attest without a TEE; never do this in production'

export async function startKbs(
  config: KbsConfig,
  plugins: KbsPlugins,
  build: string,
  o: { logStream?: NodeJS.WritableStream } = {},
): Promise<RunningKbs> {
  const { http } = config
  const loopback = http.address === '127.0.0.1' || http.address === '::1' || http.address === 'localhost'
  const tls =
    http.tls_cert && http.tls_key
      ? { cert: await readFile(http.tls_cert), key: await readFile(http.tls_key) }
      : undefined
  if (!tls && !loopback && !http.insecure_http)
    throw new CofferError(
      'ERR_KBS_CONFIG_INVALID',
      `refusing plain HTTP on ${http.address}: set http.tls_cert and http.tls_key, or http.insecure_http = true`,
    )
  const verifiers = new Map<string, Verifier>()
  const names = config.attestation.verifiers ?? plugins.verifierNames().filter((n) => n !== 'sample')
  for (const name of names) {
    if (name === 'sample' && !config.attestation.allow_sample)
      throw new CofferError(
        'ERR_ATTEST_SAMPLE_DISABLED',
        'the sample verifier is listed but allow_sample is false',
      )
    verifiers.set(name, plugins.createVerifier(name, config.attestation.verifier_settings[name] ?? {}))
  }
  if (config.attestation.allow_sample && !verifiers.has('sample'))
    verifiers.set('sample', plugins.createVerifier('sample', {}))
  const signer = await loadSigner(config.attestation.token_key)
  const adminKeys: KeyObject[] = []
  for (const path of config.admin.public_keys)
    adminKeys.push(parseAdminPublicKey(await readKey(path, 'admin public key'), path))

  const store = await plugins.createStore(config.store.type, config.store.settings, config.data_dir)
  try {
    if (config.policy.file && !(await store.get('policy', RESOURCE_POLICY_KEY))) {
      const text = await readFile(config.policy.file, 'utf8').catch((err: unknown) => {
        throw new CofferError('ERR_KBS_CONFIG_INVALID', `cannot read policy file ${config.policy.file}`, {
          cause: err,
        })
      })
      ResourcePolicy.parse(text)
      await store.put('policy', RESOURCE_POLICY_KEY, Buffer.from(text))
    }
    // A single replica keeps sessions in memory; a shared database shares them across replicas.
    const sessionStore = config.store.type === 'postgres' ? store : createMemoryStore()
    const app = await createKbsApp({
      store,
      sessionStore,
      verifiers,
      signer,
      adminKeys,
      sessionTimeoutS: config.attestation.session_timeout_s,
      tokenLifetimeS: config.attestation.token_lifetime_s,
      bodyLimit: http.body_limit,
      secureCookie: tls !== undefined,
      build,
      // Logs go to stderr: stdout carries --json results only.
      logger: {
        level: config.log.level,
        redact: ['req.headers.authorization', 'req.headers.cookie'],
        stream: o.logStream ?? process.stderr,
      },
      ...(tls ? { https: tls } : {}),
    })
    if (verifiers.has('sample')) app.log.warn(SAMPLE_KBS_WARNING)
    if (adminKeys.length === 0) app.log.warn('no admin public keys configured: the admin API is disabled')
    await app.listen({ host: http.address, port: http.port })
    const addr = app.server.address()
    const port = typeof addr === 'object' && addr ? addr.port : http.port
    const host = http.address.includes(':') ? `[${http.address}]` : http.address
    return {
      app,
      url: `${tls ? 'https' : 'http'}://${host}:${port}`,
      store,
      async close() {
        await app.close()
        await store.close()
        await sessionStore.close()
      },
    }
  } catch (err) {
    await store.close()
    throw err
  }
}

async function readKey(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err) {
    throw new CofferError(
      'ERR_KBS_CONFIG_INVALID',
      `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      { cause: err },
    )
  }
}

/** The token key from a file (replicas share it), or a fresh in-memory one for a single KBS. */
async function loadSigner(path: string | undefined): Promise<TokenSigner> {
  if (!path) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    return { privateKey, publicKey }
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(await readKey(path, 'token key'))
  } catch (err) {
    if (err instanceof CofferError) throw err
    throw new CofferError('ERR_KBS_CONFIG_INVALID', `${path} is not a PEM private key`, { cause: err })
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new CofferError(
      'ERR_KBS_CONFIG_INVALID',
      `${path}: the token key must be an ECDSA P-256 key (ES256)`,
    )
  return { privateKey, publicKey: createPublicKey(privateKey) }
}
