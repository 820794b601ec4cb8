import { readFile } from 'node:fs/promises'
import { fitReportData } from '../report-data.js'
import { allExist } from '../tee-device.js'
import { requestTsmReport, TSM_REPORT_ROOT, type TsmFs } from '../tsm-report.js'
import type { Attester } from '../types.js'
import { MAX_TDX_EVENTLOG_BYTES } from './evidence.js'

export const TDX_GUEST_DEVICE = '/dev/tdx_guest'
/** The configfs-tsm provider name of the tdx-guest driver. */
export const TDX_TSM_PROVIDER = 'tdx_guest'
/** The CC event log ACPI table, as guest-components' tdx attester reads it. */
export const TDX_CCEL_PATH = '/sys/firmware/acpi/tables/data/CCEL'

export interface TdxAttesterOptions {
  readonly devicePath?: string
  readonly tsmRoot?: string
  readonly ccelPath?: string
  readonly fs?: TsmFs
}

/**
 * The `tdx` attester: a TD quote over the session digest zero-padded to 64 bytes, through
 * configfs-tsm, sent as `{"cc_eventlog": <base64 CCEL> | null, "quote": <base64>}`.
 * mr_config_id is set by the host at launch, so `initDataDigest` is not the guest's to bind.
 */
export function createTdxAttester(options: TdxAttesterOptions = {}): Attester {
  const tsmRoot = options.tsmRoot ?? TSM_REPORT_ROOT
  return {
    tee: 'tdx',
    detect: () => allExist([options.devicePath ?? TDX_GUEST_DEVICE, tsmRoot]),
    async evidence(reportData, o) {
      const r = await requestTsmReport(fitReportData(reportData, 64), {
        provider: TDX_TSM_PROVIDER,
        root: tsmRoot,
        ...(options.fs ? { fs: options.fs } : {}),
        ...(o?.signal ? { signal: o.signal } : {}),
      })
      let ccel: Buffer | null = null
      try {
        ccel = await readFile(options.ccelPath ?? TDX_CCEL_PATH)
        if (ccel.length > MAX_TDX_EVENTLOG_BYTES) ccel = null
      } catch {
        ccel = null // no CCEL table: the verifier then has no log to replay, as with trustee
      }
      return {
        cc_eventlog: ccel ? ccel.toString('base64') : null,
        quote: Buffer.from(r.outblob).toString('base64'),
      }
    },
  }
}
