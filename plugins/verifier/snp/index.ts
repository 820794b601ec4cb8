/**
 * Registration of the `snp` verifier (STYLE §2): data only, importing this registers nothing.
 * Settings: `vendorRoots`, files holding AMD's ARK and (optionally) ASK/ASVK certificates, e.g.
 * AMD KDS `/vcek/v1/<Milan|Genoa|Turin>/cert_chain` saved as PEM. Nothing is fetched at
 * verification time, so the evidence must carry the VCEK or VLEK.
 */
import { z } from 'zod'
import { parsePluginSettings } from '../../../lib/attest/plugin-settings.js'
import { createSnpVerifier } from '../../../lib/attest/snp/verifier.js'
import { VERIFIER_POINT, type PluginSettings, type Verifier } from '../../../lib/attest/types.js'
import { loadVendorCertificates } from '../../../lib/attest/vendor-certs.js'
import type { Registration } from '../../../lib/util/registry.js'

export { createSnpVerifier } from '../../../lib/attest/snp/verifier.js'

/**
 * `vendorRoots`: file paths (a list, or one path). Optional, because the KBS builds every
 * built-in verifier even when its TEE is not configured; such a verifier then refuses all
 * evidence with ERR_CONFIG_INVALID instead of failing the server's start.
 */
export const SnpVerifierSettings = z.strictObject({
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

/** `verifier.v1/snp`. Vendor files are read on first use, then kept. */
export const plugin: Registration<Verifier, PluginSettings> = {
  point: VERIFIER_POINT,
  name: 'snp',
  init: (settings) => {
    const s = parsePluginSettings(SnpVerifierSettings, settings, 'snp verifier')
    return createSnpVerifier({ vendor: () => loadVendorCertificates(s.vendorRoots, 'snp verifier') })
  },
}
