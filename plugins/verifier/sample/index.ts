/**
 * `verifier.v1/sample`: accepts trustee-shaped sample evidence, checking only the report-data
 * binding. It has no hardware root, so hardware is always appraised contraindicated (as trustee's
 * default policy does); a resource policy must name `tee == "sample"` to let it through. The KBS
 * enables it only when configured to, and logs a warning on every use.
 */
import { timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import { AR4SI } from '../../../lib/attest/trust.js'
import type { PluginSettings, Verifier } from '../../../lib/attest/types.js'
import { VERIFIER_POINT } from '../../../lib/attest/types.js'
import { CofferError } from '../../../lib/util/errors.js'
import type { Registration } from '../../../lib/util/registry.js'

const SampleEvidenceSchema = z.object({
  svn: z.string().max(32),
  report_data: z.string().max(256),
})

/** Fixed claims trustee's sample verifier reports, so sample-based policies carry over. */
const LAUNCH_DIGEST = 'abcde'

export function createSampleVerifier(): Verifier {
  return {
    tee: 'sample',
    async verify(evidence, ctx) {
      const e = SampleEvidenceSchema.safeParse(evidence)
      if (!e.success)
        throw new CofferError(
          'ERR_ATTEST_EVIDENCE_INVALID',
          'sample evidence must be {"svn": string, "report_data": base64}',
        )
      const reported = Buffer.from(e.data.report_data, 'base64')
      const expected = Buffer.from(ctx.reportData)
      if (reported.length !== expected.length || !timingSafeEqual(reported, expected))
        throw new CofferError(
          'ERR_ATTEST_REPORT_DATA_MISMATCH',
          'the sample evidence does not bind this session (report_data differs)',
        )
      const digests = ctx.referenceValues.get('sample.launch_digest')
      const svns = ctx.referenceValues.get('sample.svn')
      const executables =
        digests === undefined && svns === undefined
          ? AR4SI.UNAVAILABLE
          : (digests ?? [LAUNCH_DIGEST]).includes(LAUNCH_DIGEST) &&
              (svns ?? [e.data.svn]).includes(e.data.svn)
            ? AR4SI.APPROVED_EXECUTABLES
            : AR4SI.UNRECOGNIZED
      return {
        claims: {
          svn: e.data.svn,
          report_data: reported.toString('hex'),
          launch_digest: LAUNCH_DIGEST,
          platform_version: { major: 1, minor: 4 },
          debug: false,
          ...(ctx.initDataDigest ? { init_data: Buffer.from(ctx.initDataDigest).toString('hex') } : {}),
        },
        trust: { hardware: AR4SI.CONTRAINDICATED, executables, configuration: AR4SI.APPROVED },
      }
    },
  }
}

export const plugin: Registration<Verifier, PluginSettings> = {
  point: VERIFIER_POINT,
  name: 'sample',
  init: () => createSampleVerifier(),
}
