/**
 * The keyprovider key wrappers (spec §2). Unlike jwe these are not one plugin but one wrapper per
 * entry of `OCICRYPT_KEYPROVIDER_CONFIG`, so there is no static Registration: `plugins/index.ts`
 * appends `await loadProviderKeyWrappers()` to the built-in wrappers. Importing this module reads
 * nothing.
 */
import type { KeyWrapper } from '../../../lib/crypt/keywrap.js'
import { loadKeyProviderConfig } from '../../../lib/crypt/keyprovider/config.js'
import { createProviderKeyWrappers, type ProviderKeyWrapperOptions } from './provider-keywrap.js'

export {
  createProviderKeyWrapper,
  createProviderKeyWrappers,
  parseProviderRecipient,
  providerAnnotation,
  providerSchemeName,
  type ProviderKeyWrapperOptions,
} from './provider-keywrap.js'

/** Reads `OCICRYPT_KEYPROVIDER_CONFIG` from `env` and returns one wrapper per provider (none without it). */
export async function loadProviderKeyWrappers(
  env: NodeJS.ProcessEnv = process.env,
  o: ProviderKeyWrapperOptions = {},
): Promise<KeyWrapper[]> {
  return createProviderKeyWrappers(await loadKeyProviderConfig(env), o)
}
