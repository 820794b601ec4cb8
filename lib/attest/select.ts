import { CofferError } from '../util/errors.js'
import type { Attester, PluginSettings } from './types.js'

export interface AttesterCatalog {
  attesterNames(): string[]
  createAttester(name: string, settings: PluginSettings): Attester
}

/**
 * The attester to use: the one named, or the first whose TEE is detected. Unlike
 * guest-components, finding no TEE is an error, never a silent fallback to `sample`.
 */
export async function selectAttester(
  catalog: AttesterCatalog,
  name: string | undefined,
  settings: PluginSettings = {},
): Promise<Attester> {
  if (name) return catalog.createAttester(name, settings)
  const tried: string[] = []
  for (const candidate of catalog.attesterNames()) {
    if (candidate === 'sample') continue
    tried.push(candidate)
    const attester = catalog.createAttester(candidate, settings)
    if (await attester.detect()) return attester
  }
  throw new CofferError(
    'ERR_ATTEST_NO_TEE',
    `no TEE found on this machine (tried: ${tried.join(', ') || 'none'}); name one with --attester, or --attester sample for tests and demos only`,
  )
}
