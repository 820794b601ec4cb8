/**
 * An in-process coffer KBS on 127.0.0.1 (random port) for tests, with an admin key pair and the
 * sample verifier enabled unless asked otherwise. Always `close()` it.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { signAdminToken } from '../../lib/kbs/admin-auth.js'
import { parseKbsConfig } from '../../lib/kbs/config.js'
import { createMemoryStore } from '../../lib/kbs/memory-store.js'
import { startKbs, type KbsPlugins, type RunningKbs } from '../../lib/kbs/serve.js'
import type { KbsStore } from '../../lib/kbs/store.js'
import { createVerifier, verifierNames } from '../../plugins/index.js'

export interface TestKbs extends RunningKbs {
  readonly dir: string
  readonly adminKey: KeyObject
  readonly adminPublicKeyPath: string
  readonly adminPrivateKeyPath: string
  adminHeaders(): Promise<Record<string, string>>
}

export interface TestKbsOptions {
  config?: Record<string, unknown>
  allowSample?: boolean
  store?: KbsStore
  /** Receives the server's JSON log lines (set config.log.level to see them). */
  logStream?: NodeJS.WritableStream
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
    async close() {
      await kbs.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}
