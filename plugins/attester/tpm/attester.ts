import { INIT_DATA_PCR, QUALIFYING_DATA_SIZE, SHA256_PCR_SIZE } from '../../../lib/attest/tpm/constants.js'
import { extendPcr, handleExists, quote, readPublic } from '../../../lib/attest/tpm/device.js'
import type { TpmEvidence } from '../../../lib/attest/tpm/evidence.js'
import { fitReportData } from '../../../lib/attest/report-data.js'
import type { Attester } from '../../../lib/attest/types.js'
import { throwIfAborted, type Io } from '../../../lib/util/io.js'
import type { TpmAttesterSettings } from './settings.js'

/**
 * The `tpm` attester: a TPM 2.0 quote by a persisted AK over sha256 PCRs, with the report data
 * fitted to 32 bytes as qualifying data, in guest-components' evidence shape (see
 * lib/attest/tpm/evidence.ts). A TPM alone is not a TEE: a verifier trusts the quote only as far
 * as it trusts the AK (guest-components warns the same).
 */
export class TpmAttester implements Attester {
  readonly tee = 'tpm'

  constructor(private readonly settings: TpmAttesterSettings) {}

  /** True only if the TPM answers and a key sits at the AK handle. */
  async detect(): Promise<boolean> {
    return handleExists({ tcti: this.settings.tcti }, this.settings.akHandle)
  }

  /**
   * `options.initDataDigest` is not used here: init-data is bound once, at start-up, by
   * `bindInitData` (guest-components' `bind_init_data`); extending PCR8 on every quote would make
   * its value depend on how many times the guest attested.
   */
  async evidence(
    reportData: Uint8Array,
    options: { initDataDigest?: Uint8Array; signal?: AbortSignal } = {},
  ): Promise<TpmEvidence> {
    throwIfAborted(options.signal)
    const t = { tcti: this.settings.tcti, signal: options.signal }
    const ak = await readPublic(t, this.settings.akHandle)
    const q = await quote(t, {
      akHandle: this.settings.akHandle,
      scheme: ak.scheme,
      pcrs: this.settings.pcrs,
      qualifyingData: fitReportData(reportData, QUALIFYING_DATA_SIZE),
    })
    return {
      ak_public: Buffer.from(ak.der).toString('base64'),
      tpm_quote: {
        message: Buffer.from(q.message).toString('base64'),
        signature: Buffer.from(q.signature).toString('base64'),
        pcrs: q.pcrValues.map((v) => Buffer.from(v).toString('hex')),
      },
    }
  }

  /**
   * Extends PCR8 with the init-data digest, fitted to 32 bytes (the sha256 bank's size; a sha256
   * init-data digest is used as is, which is all guest-components supports). Call it once per boot.
   */
  async bindInitData(initDataDigest: Uint8Array, o: Io = {}): Promise<void> {
    await extendPcr(
      { tcti: this.settings.tcti, signal: o.signal },
      INIT_DATA_PCR,
      fitReportData(initDataDigest, SHA256_PCR_SIZE),
    )
  }
}
