/**
 * Registration of the `tdx` verifier (STYLE §2): data only, importing this registers nothing.
 * Settings: `vendorRoots`, files holding the Intel SGX Root CA certificate (PEM or DER). The
 * quote's PCK chain must end in it. TCB status collateral (PCS TCB Info, QE Identity) is not
 * consulted.
 */
import { createTdxVerifier } from '../../../lib/attest/tdx/verifier.js'
import { VERIFIER_POINT, type PluginSettings, type Verifier } from '../../../lib/attest/types.js'
import { vendorCertificatesFrom } from '../../../lib/attest/vendor-certs.js'
import type { Registration } from '../../../lib/util/registry.js'

export { createTdxVerifier } from '../../../lib/attest/tdx/verifier.js'

/** `verifier.v1/tdx`. The root files are read on first use, then kept. */
export const plugin: Registration<Verifier, PluginSettings> = {
  point: VERIFIER_POINT,
  name: 'tdx',
  init: (settings) => createTdxVerifier({ vendor: vendorCertificatesFrom(settings, 'tdx verifier') }),
}
