/**
 * Registration of the `tdx` verifier (STYLE §2): data only, importing this registers nothing.
 * Settings: `vendorRoots`, files holding the Intel SGX Root CA certificate (PEM or DER). The
 * quote's PCK chain must end in it. TCB status collateral (PCS TCB Info, QE Identity) is not
 * consulted.
 */
import { z } from 'zod'
import { parsePluginSettings } from '../../../lib/attest/plugin-settings.js'
import { createTdxVerifier } from '../../../lib/attest/tdx/verifier.js'
import { VERIFIER_POINT, type PluginSettings, type Verifier } from '../../../lib/attest/types.js'
import { loadVendorCertificates } from '../../../lib/attest/vendor-certs.js'
import type { Registration } from '../../../lib/util/registry.js'

export { createTdxVerifier } from '../../../lib/attest/tdx/verifier.js'

/**
 * `vendorRoots`: file paths (a list, or one path). Optional, because the KBS builds every
 * built-in verifier even when its TEE is not configured; such a verifier then refuses all
 * evidence with ERR_CONFIG_INVALID instead of failing the server's start.
 */
export const TdxVerifierSettings = z.strictObject({
  vendorRoots: z
    .union([
      z
        .string()
        .min(1)
        .transform((p) => [p]),
      z.array(z.string().min(1)),
    ])
    .default([]),
})

/** `verifier.v1/tdx`. The root files are read on first use, then kept. */
export const plugin: Registration<Verifier, PluginSettings> = {
  point: VERIFIER_POINT,
  name: 'tdx',
  init: (settings) => {
    const s = parsePluginSettings(TdxVerifierSettings, settings, 'tdx verifier')
    return createTdxVerifier({ vendor: () => loadVendorCertificates(s.vendorRoots, 'tdx verifier') })
  },
}
