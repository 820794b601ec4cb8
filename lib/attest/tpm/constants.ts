/**
 * TPM 2.0 constants coffer's quote parser and tools use. Values are from TCG "TPM 2.0 Library,
 * Part 2: Structures" (TPM_GENERATED, TPM_ST, TPM_ALG_ID); the 32-byte qualifying data, PCR8
 * for init-data and the default AK handle follow guest-components' tpm attester
 * (attestation-agent/attester/src/tpm) and trustee's verifier (deps/verifier/src/tpm).
 */

/** `TPM_GENERATED_VALUE`: every TPMS_ATTEST the TPM signs starts with it ("\xffTCG"). */
export const TPM_GENERATED_VALUE = 0xff544347
/** `TPM_ST_ATTEST_QUOTE`: the TPMS_ATTEST type a TPM2_Quote produces. */
export const TPM_ST_ATTEST_QUOTE = 0x8018

/** TPM_ALG_ID values coffer reads. */
export const TPM_ALG = {
  SHA1: 0x0004,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  RSASSA: 0x0014,
  RSAPSS: 0x0016,
  ECDSA: 0x0018,
} as const

/** Hash algorithms a quote may be signed with (no SHA-1), by TPM_ALG_ID → node:crypto name. */
export const SIGNING_HASHES: ReadonlyMap<number, { name: string; size: number }> = new Map([
  [TPM_ALG.SHA256, { name: 'sha256', size: 32 }],
  [TPM_ALG.SHA384, { name: 'sha384', size: 48 }],
  [TPM_ALG.SHA512, { name: 'sha512', size: 64 }],
])

/** PCRs in a PC-client TPM's bank. */
export const PCR_COUNT = 24
/** Bytes of a SHA-256 PCR value; the evidence carries the sha256 bank only (trustee's format). */
export const SHA256_PCR_SIZE = 32
/** All 24 PCRs: what guest-components quotes and trustee's verifier expects. */
export const ALL_PCRS: readonly number[] = Array.from({ length: PCR_COUNT }, (_, i) => i)

/** The quote's qualifying data (extraData) is the report data fitted to this many bytes. */
export const QUALIFYING_DATA_SIZE = 32
/** guest-components extends the init-data digest into this PCR (`bind_init_data`). */
export const INIT_DATA_PCR = 8

/** Where guest-components (and coffer) look for the AK: `AA_TPM_AK_HANDLE`'s default. */
export const DEFAULT_AK_HANDLE = 0x81010002
/** The EK's persistent handle in TCG's provisioning guidance, as trustee's swtpm setup uses. */
export const DEFAULT_EK_HANDLE = 0x81010001
/** The kernel's in-kernel resource manager; needed when several processes share the TPM. */
export const DEFAULT_TCTI = 'device:/dev/tpmrm0'
