import type { PluginSettings } from '../../../lib/attest/types.js'
import { VERIFIER_POINT } from '../../../lib/attest/types.js'
import type { Registration } from '../../../lib/util/registry.js'
import { parseTpmVerifierSettings } from './settings.js'
import { TpmVerifier } from './verifier.js'

/**
 * `tpm` verifier. Settings: `trustedAkKeys` (PEM files of trusted AKs). Reference values:
 * `tpm.trusted_ak` (hex sha256 of an AK's DER SPKI, or the base64 DER as trustee stores it) and
 * `tpm.pcr0` … `tpm.pcr23` (hex sha256).
 */
export const plugin: Registration<TpmVerifier, PluginSettings | undefined> = {
  point: VERIFIER_POINT,
  name: 'tpm',
  init: (settings) => new TpmVerifier(parseTpmVerifierSettings(settings)),
}

export { TpmVerifier } from './verifier.js'
