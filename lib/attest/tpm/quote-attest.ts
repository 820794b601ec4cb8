import { MAX_TPM_ATTEST_BYTES } from '../../util/limits.js'
import { PCR_COUNT, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE } from './constants.js'
import { MarshalReader } from './marshal-reader.js'

/** One TPMS_PCR_SELECTION: a bank and the PCR indices selected in it, ascending. */
export interface PcrSelection {
  readonly hashAlg: number
  readonly pcrs: readonly number[]
}

/** A parsed TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (TPM 2.0 Part 2, §10.12.12 and §10.12.1). */
export interface QuoteAttest {
  /** TPM2B_NAME of the signing key, qualified by its hierarchy. */
  readonly qualifiedSigner: Uint8Array
  /** TPM2B_DATA: the caller's qualifying data, i.e. coffer's and trustee's report data. */
  readonly extraData: Uint8Array
  readonly clockInfo: {
    readonly clock: bigint
    readonly resetCount: number
    readonly restartCount: number
    readonly safe: boolean
  }
  readonly firmwareVersion: bigint
  readonly pcrSelections: readonly PcrSelection[]
  /** Digest of the selected PCR values, in selection order, with the signing scheme's hash. */
  readonly pcrDigest: Uint8Array
}

// Largest legal sizes (Part 2): TPMU_NAME / TPMT_HA is a 2-byte algorithm plus a SHA-512
// digest; TPM2B_DIGEST is one digest; PCR_SELECT_MAX is 3 on a 24-PCR TPM (4 leaves room for
// TPMs with more PCRs, whose extra bits are then rejected); HASH_COUNT is a handful of banks.
const MAX_NAME = 2 + 64
const MAX_DATA = 2 + 64
const MAX_DIGEST = 64
const MAX_SIZEOF_SELECT = 4
const MAX_BANKS = 8

/**
 * Parses the `message` a TPM2_Quote signed. Pure, bounds-checked: anything malformed (wrong
 * magic or type, a size past its maximum, a PCR index the bank does not have, trailing bytes)
 * is ERR_ATTEST_EVIDENCE_INVALID. It checks structure only; the signature is checked elsewhere.
 */
export function parseQuoteAttest(message: Uint8Array): QuoteAttest {
  const r = new MarshalReader(message, 'TPMS_ATTEST')
  if (message.length > MAX_TPM_ATTEST_BYTES) r.fail(`${message.length} bytes is too large`)
  const magic = r.u32('magic')
  if (magic !== TPM_GENERATED_VALUE) r.fail(`magic is 0x${magic.toString(16)}, not TPM_GENERATED_VALUE`)
  const type = r.u16('type')
  if (type !== TPM_ST_ATTEST_QUOTE) r.fail(`type is 0x${type.toString(16)}, not TPM_ST_ATTEST_QUOTE`)
  const qualifiedSigner = r.tpm2b('qualifiedSigner', MAX_NAME)
  const extraData = r.tpm2b('extraData', MAX_DATA)
  const clock = r.u64('clockInfo.clock')
  const resetCount = r.u32('clockInfo.resetCount')
  const restartCount = r.u32('clockInfo.restartCount')
  const safeByte = r.u8('clockInfo.safe')
  if (safeByte > 1) r.fail(`clockInfo.safe is ${safeByte}, not a TPMI_YES_NO`)
  const firmwareVersion = r.u64('firmwareVersion')
  const pcrSelections = readPcrSelections(r)
  const pcrDigest = r.tpm2b('pcrDigest', MAX_DIGEST)
  r.end()
  return {
    qualifiedSigner,
    extraData,
    clockInfo: { clock, resetCount, restartCount, safe: safeByte === 1 },
    firmwareVersion,
    pcrSelections,
    pcrDigest,
  }
}

/** TPML_PCR_SELECTION: u32 count, then per bank hash u16, sizeofSelect u8, a bitmap (LSB = PCR 0). */
function readPcrSelections(r: MarshalReader): PcrSelection[] {
  const count = r.u32('pcrSelect.count')
  if (count > MAX_BANKS) r.fail(`pcrSelect.count is ${count}`)
  const out: PcrSelection[] = []
  for (let i = 0; i < count; i++) {
    const hashAlg = r.u16('pcrSelect.hash')
    const size = r.u8('pcrSelect.sizeofSelect')
    if (size > MAX_SIZEOF_SELECT) r.fail(`pcrSelect.sizeofSelect is ${size}`)
    const bitmap = r.bytes(size, 'pcrSelect.pcrSelect')
    const pcrs: number[] = []
    for (let byte = 0; byte < size; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        if ((bitmap[byte]! >> bit) & 1) pcrs.push(byte * 8 + bit)
      }
    }
    const beyond = pcrs.find((p) => p >= PCR_COUNT)
    if (beyond !== undefined) r.fail(`PCR ${beyond} selected; the bank has ${PCR_COUNT}`)
    out.push({ hashAlg, pcrs })
  }
  return out
}
