/**
 * The only file that names every built-in plugin (containers/image `alltransports`). Each
 * extension point gets a typed accessor so callers never spell a point name.
 */
import type { Attester, PluginSettings, Verifier } from '../lib/attest/types.js'
import { ATTESTER_POINT, VERIFIER_POINT } from '../lib/attest/types.js'
import { createMemoryStore } from '../lib/kbs/memory-store.js'
import type { KbsStore } from '../lib/kbs/store.js'
import { join } from 'node:path'
import { createRegistry, type Registration } from '../lib/util/registry.js'
import { keywrapBuiltins } from './keywraps.js'
import { plugin as sampleAttester } from './attester/sample/index.js'
import { plugin as snpAttester } from './attester/snp/index.js'
import { plugin as tdxAttester } from './attester/tdx/index.js'
import { plugin as tpmAttester } from './attester/tpm/index.js'
import { plugin as sampleVerifier } from './verifier/sample/index.js'
import { plugin as snpVerifier } from './verifier/snp/index.js'
import { plugin as tdxVerifier } from './verifier/tdx/index.js'
import { plugin as tpmVerifier } from './verifier/tpm/index.js'

export const builtins: readonly Registration<unknown, never>[] = [
  ...keywrapBuiltins,
  // Attesters in detection order; sample is never detected.
  tdxAttester,
  snpAttester,
  tpmAttester,
  sampleAttester,
  sampleVerifier,
  snpVerifier,
  tdxVerifier,
  tpmVerifier,
] as Registration<unknown, never>[]

export { KEYWRAP_POINT, allKeyWrappers, keyWrappers } from './keywraps.js'

const registry = createRegistry(builtins)

/** Attester names, in detection order (most specific TEE first; `sample` is never detected). */
export function attesterNames(): string[] {
  return registry.list<Attester, PluginSettings>(ATTESTER_POINT).map((r) => r.name)
}

export function createAttester(name: string, settings: PluginSettings = {}): Attester {
  return registry.get<Attester, PluginSettings>(ATTESTER_POINT, name).init(settings)
}

export function verifierNames(): string[] {
  return registry.list<Verifier, PluginSettings>(VERIFIER_POINT).map((r) => r.name)
}

export function createVerifier(name: string, settings: PluginSettings = {}): Verifier {
  return registry.get<Verifier, PluginSettings>(VERIFIER_POINT, name).init(settings)
}

/**
 * Opens the KBS store `type` with `settings`, defaulting locations into the KBS data directory:
 * `fs` keeps entries in DATA/store, `sealed` (over fs unless `inner` is given) takes its master key
 * from DATA/master.key. `memory` is built in (sessions, tests). The store plugins, with `pg` and
 * the AWS Encryption SDK, load only here.
 */
export async function openKbsStore(
  type: string,
  settings: PluginSettings,
  dataDir: string,
): Promise<KbsStore> {
  if (type === 'memory') return createMemoryStore()
  const { createKbsStore } = await import('./kbs-stores.js')
  const fsDefaults = { root: join(dataDir, 'store') }
  if (type === 'fs') return createKbsStore({ store: 'fs', settings: { ...fsDefaults, ...settings } })
  if (type === 'sealed')
    return createKbsStore({
      store: 'sealed',
      settings: {
        masterKeyFile: join(dataDir, 'master.key'),
        inner: { store: 'fs', settings: fsDefaults },
        ...settings,
      },
    })
  return createKbsStore({ store: type, settings })
}
