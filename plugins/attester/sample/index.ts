/**
 * `attester.v1/sample`: evidence with no hardware behind it, in trustee's sample shape
 * (`{"svn":"1","report_data":"<base64 digest>"}`). It proves nothing; it exists for tests and
 * demos. It is never detected: a caller must name it, and every use warns on stderr.
 */
import type { Attester, PluginSettings } from '../../../lib/attest/types.js'
import { ATTESTER_POINT } from '../../../lib/attest/types.js'
import type { Registration } from '../../../lib/util/registry.js'

export const SAMPLE_WARNING =
  'coffer: WARNING: using the "sample" attester: its evidence is not backed by any TEE and proves nothing; never use it in production'

export function createSampleAttester(
  warn: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): Attester {
  return {
    tee: 'sample',
    // Never chosen by detection (trustee's guest falls back to sample silently; coffer does not).
    detect: async () => false,
    async evidence(reportData) {
      warn(SAMPLE_WARNING)
      return { svn: '1', report_data: Buffer.from(reportData).toString('base64') }
    },
  }
}

export const plugin: Registration<Attester, PluginSettings> = {
  point: ATTESTER_POINT,
  name: 'sample',
  init: () => createSampleAttester(),
}
