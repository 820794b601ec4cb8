import { fitReportData } from '../report-data.js'
import { allExist } from '../tee-device.js'
import { requestTsmReport, TSM_REPORT_ROOT, type TsmFs } from '../tsm-report.js'
import type { Attester } from '../types.js'
import { parseSnpCertTable } from './cert-table.js'
import { snpReportToSerde } from './evidence.js'
import { parseSnpReport, SNP_FIELD_SIZES } from './report.js'

export const SNP_GUEST_DEVICE = '/dev/sev-guest'
/** The configfs-tsm provider name of the sev-guest driver. */
export const SNP_TSM_PROVIDER = 'sev_guest'

export interface SnpAttesterOptions {
  readonly devicePath?: string
  readonly tsmRoot?: string
  readonly fs?: TsmFs
}

/**
 * The `snp` attester: asks the sev-guest driver (through configfs-tsm) for a report over the
 * session digest zero-padded to 64 bytes, and sends it the way guest-components does:
 * `{"attestation_report": <virtee serde JSON>, "cert_chain": [...] | null}`, the chain from the
 * host-supplied certificate table (auxblob) when there is one. host_data is fixed by the host at
 * launch, so `initDataDigest` is not the guest's to bind.
 */
export function createSnpAttester(options: SnpAttesterOptions = {}): Attester {
  const tsmRoot = options.tsmRoot ?? TSM_REPORT_ROOT
  return {
    tee: 'snp',
    detect: () => allExist([options.devicePath ?? SNP_GUEST_DEVICE, tsmRoot]),
    async evidence(reportData, o) {
      const r = await requestTsmReport(fitReportData(reportData, SNP_FIELD_SIZES.reportData), {
        provider: SNP_TSM_PROVIDER,
        root: tsmRoot,
        ...(options.fs ? { fs: options.fs } : {}),
        ...(o?.signal ? { signal: o.signal } : {}),
      })
      const report = parseSnpReport(r.outblob)
      const chain = r.auxblob ? parseSnpCertTable(r.auxblob) : []
      return {
        attestation_report: snpReportToSerde(report),
        cert_chain:
          chain.length > 0 ? chain.map((c) => ({ cert_type: c.certType, data: Array.from(c.data) })) : null,
      }
    },
  }
}
