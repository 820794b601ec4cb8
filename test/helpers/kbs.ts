/**
 * An in-process coffer KBS on 127.0.0.1 (random port) for tests, with an admin key pair and the
 * sample verifier enabled unless asked otherwise. Always `close()` it.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startKbsServeProcess, type KbsServeProcess } from '../../cli/demo/kbs-serve-process.js'
import { signAdminToken } from '../../lib/kbs/admin-auth.js'
import { KbsAdminClient } from '../../lib/kbs/admin-client.js'
import { parseKbsConfig } from '../../lib/kbs/config.js'
import { createMemoryStore } from '../../lib/kbs/memory-store.js'
import { parseResourceUri } from '../../lib/kbs/resource-uri.js'
import { startKbs, type KbsPlugins, type RunningKbs } from '../../lib/kbs/serve.js'
import type { KbsStore } from '../../lib/kbs/store.js'
import { createVerifier, verifierNames } from '../../plugins/index.js'
import { coffer, COFFER_BIN } from './coffer.js'

export interface TestKbs extends RunningKbs {
  readonly dir: string
  readonly adminKey: KeyObject
  readonly adminPublicKeyPath: string
  readonly adminPrivateKeyPath: string
  adminHeaders(): Promise<Record<string, string>>
  /** Stores resources through the admin API (`coffer kbs put-resource`'s client): path → bytes. */
  putResources(resources: Record<string, string | Uint8Array>): Promise<void>
  /** Installs a resource policy of one allow rule: `resources` (globs) when `when` (CEL) holds. */
  allowResources(resources: string[], when: string): Promise<void>
}

export interface TestKbsOptions {
  config?: Record<string, unknown>
  allowSample?: boolean
  store?: KbsStore
  /** Receives the server's JSON log lines (set config.log.level to see them). */
  logStream?: NodeJS.WritableStream
}

async function withAdmin(
  url: string,
  adminKey: KeyObject,
  use: (a: KbsAdminClient) => Promise<void>,
): Promise<void> {
  const admin = new KbsAdminClient({ url, adminKey })
  try {
    await use(admin)
  } finally {
    await admin.close()
  }
}

export async function startTestKbs(o: TestKbsOptions = {}): Promise<TestKbs> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-kbs-'))
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const adminPublicKeyPath = join(dir, 'admin.pub')
  const adminPrivateKeyPath = join(dir, 'admin.key')
  await writeFile(adminPublicKeyPath, publicKey.export({ type: 'spki', format: 'pem' }))
  await writeFile(adminPrivateKeyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
  const config = parseKbsConfig(
    {
      data_dir: join(dir, 'data'),
      http: { port: 0 },
      store: { type: 'memory' },
      attestation: { allow_sample: o.allowSample ?? true },
      admin: { public_keys: [adminPublicKeyPath] },
      log: { level: 'silent' },
      ...o.config,
    },
    dir,
  )
  const store = o.store ?? createMemoryStore()
  const plugins: KbsPlugins = {
    verifierNames,
    createVerifier,
    createStore: async () => store,
  }
  let kbs: RunningKbs
  try {
    kbs = await startKbs(config, plugins, 'coffer-test', o.logStream ? { logStream: o.logStream } : {})
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  return {
    ...kbs,
    dir,
    adminKey: privateKey,
    adminPublicKeyPath,
    adminPrivateKeyPath,
    adminHeaders: async () => ({ authorization: `Bearer ${await signAdminToken(privateKey)}` }),
    putResources: (resources) =>
      withAdmin(kbs.url, privateKey, async (admin) => {
        for (const [path, value] of Object.entries(resources))
          await admin.putResource(parseResourceUri(`kbs:///${path}`), Buffer.from(value))
      }),
    allowResources: (resources, when) =>
      withAdmin(kbs.url, privateKey, (admin) =>
        admin.setPolicy(
          JSON.stringify({
            version: 'coffer.dev/kbs-resource-policy/v1',
            rules: [{ effect: 'allow', resources, when }],
          }),
        ),
      ),
    async close() {
      await kbs.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** `coffer kbs serve` as its own process, as an operator runs it (see `spawnKbsServe`). */
export interface KbsProcess extends KbsServeProcess {
  /** `--url URL --admin-key KEY` for the admin commands. */
  readonly adminArgs: string[]
}

/**
 * Runs the built `coffer kbs serve` (memory store, sample TEE allowed, `policy` installed) with an
 * admin key pair made by `coffer keys generate` in `dir`, and waits until it listens.
 */
export async function spawnKbsServe(dir: string, policy: string): Promise<KbsProcess> {
  const keys = await coffer(['keys', 'generate', '--type', 'ec', '--out', join(dir, 'admin')])
  if (keys.code !== 0) throw new Error(`keys generate failed: ${keys.stderr}`)
  await writeFile(join(dir, 'policy.json'), policy)
  const kbs = await startKbsServeProcess({
    cofferBin: COFFER_BIN,
    adminPublicKey: join(dir, 'admin.pub'),
    policyFile: join(dir, 'policy.json'),
  })
  return { ...kbs, adminArgs: ['--url', kbs.url, '--admin-key', join(dir, 'admin.key')] }
}
