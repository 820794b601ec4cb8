/**
 * Registration of the `snp` verifier (STYLE §2): data only, importing this registers nothing.
 * Settings: `vendorRoots`, files holding AMD's ARK and (optionally) ASK/ASVK certificates, e.g.
 * AMD KDS `/vcek/v1/<Milan|Genoa|Turin>/cert_chain` saved as PEM. Nothing is fetched at
 * verification time, so the evidence must carry the VCEK or VLEK.
 */
import { createSnpVerifier } from '../../../lib/attest/snp/verifier.js'
import { VERIFIER_POINT, type PluginSettings, type Verifier } from '../../../lib/attest/types.js'
import { vendorCertificatesFrom } from '../../../lib/attest/vendor-certs.js'
import type { Registration } from '../../../lib/util/registry.js'

export { createSnpVerifier } from '../../../lib/attest/snp/verifier.js'

/** `verifier.v1/snp`. Vendor files are read on first use, then kept. */
export const plugin: Registration<Verifier, PluginSettings> = {
  point: VERIFIER_POINT,
  name: 'snp',
  init: (settings) => createSnpVerifier({ vendor: vendorCertificatesFrom(settings, 'snp verifier') }),
}
