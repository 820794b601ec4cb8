import type { PluginSettings } from '../../../lib/attest/types.js'
import { ATTESTER_POINT } from '../../../lib/attest/types.js'
import type { Registration } from '../../../lib/util/registry.js'
import { TpmAttester } from './attester.js'
import { parseTpmAttesterSettings } from './settings.js'

/**
 * `tpm` attester. Settings: `tcti` (default `device:/dev/tpmrm0`), `akHandle` (default
 * 0x81010002), `pcrs` (sha256 bank, default all 24). Invalid settings are ERR_CONFIG_INVALID.
 */
export const plugin: Registration<TpmAttester, PluginSettings | undefined> = {
  point: ATTESTER_POINT,
  name: 'tpm',
  init: (settings) => new TpmAttester(parseTpmAttesterSettings(settings)),
}

export { TpmAttester } from './attester.js'
export type { TpmAttesterSettings } from './settings.js'
