/**
 * The built-in key wrappers alone, for the commands that encrypt or decrypt layers (`copy`,
 * `encrypt`, `decrypt`, `pull`, `inspect`). They load only these: the attesters and verifiers
 * `plugins/index.ts` also lists cost ~0.3–0.6 s of start-up (x509 and report parsers) that a
 * layer copy never uses.
 */
import type { KeyWrapper } from '../lib/crypt/keywrap.js'
import { createRegistry, type Registration } from '../lib/util/registry.js'
import { plugin as jwe } from './keywrap/jwe/index.js'
import { plugin as kbs } from './keywrap/kbs/index.js'
import { plugin as pgp } from './keywrap/pgp/index.js'
import { plugin as pkcs7 } from './keywrap/pkcs7/index.js'
import { loadProviderKeyWrappers } from './keywrap/provider/index.js'

export const KEYWRAP_POINT = 'keywrap.v1'

/** In the order they are tried on decryption. */
export const keywrapBuiltins: readonly Registration<unknown, never>[] = [
  jwe,
  pkcs7,
  pgp,
  kbs,
] as Registration<unknown, never>[]

const registry = createRegistry(keywrapBuiltins)

/** Every built-in key wrapper, in a fixed order (tried in this order on decryption). */
export function keyWrappers(): KeyWrapper[] {
  return registry.list<KeyWrapper>(KEYWRAP_POINT).map((r) => r.init())
}

/**
 * The built-ins plus one wrapper per key provider in the ocicrypt config file
 * (OCICRYPT_KEYPROVIDER_CONFIG); those are data, not registrations, so they are loaded here.
 */
export async function allKeyWrappers(env: NodeJS.ProcessEnv = process.env): Promise<KeyWrapper[]> {
  return [...keyWrappers(), ...(await loadProviderKeyWrappers(env))]
}
