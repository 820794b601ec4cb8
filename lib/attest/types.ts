/**
 * Attestation's extension points. An Attester runs in the guest and turns report data (the hash
 * that binds the KBS session: nonce + tee-pubkey) into TEE evidence; a Verifier runs in the KBS,
 * checks that evidence (signatures up to the vendor roots, the report-data binding) and appraises
 * its measurements against reference values. Wire shapes follow trustee/guest-components
 * (see ../shared/specs/kbs-and-attestation.md §3).
 */

/** TEE names as the KBS protocol spells them (kbs-types `Tee`). */
export const TEE_TYPES = [
  'sample',
  'tpm',
  'snp',
  'tdx',
  'sgx',
  'az-snp-vtpm',
  'az-tdx-vtpm',
  'cca',
  'csv',
  'se',
] as const
export type TeeType = (typeof TEE_TYPES)[number]

export const ATTESTER_POINT = 'attester.v1'
export const VERIFIER_POINT = 'verifier.v1'

/** Plugin settings come from the config file or CLI flags; each plugin validates its own. */
export type PluginSettings = Readonly<Record<string, unknown>>

export interface Attester {
  readonly tee: TeeType
  /** Whether this TEE is usable here (device present, AK provisioned…). Never throws. */
  detect(): Promise<boolean>
  /**
   * Evidence over `reportData`: the raw runtime-data digest (48 bytes for sha384). The attester
   * fits it to its field itself (see `fitReportData`): TPM truncates to 32 bytes, SNP/TDX pad to
   * 64. Returns the JSON value sent as `tee-evidence.primary_evidence`.
   */
  evidence(
    reportData: Uint8Array,
    options?: { initDataDigest?: Uint8Array; signal?: AbortSignal },
  ): Promise<unknown>
}

/**
 * AR4SI trustworthiness claims (draft-ietf-rats-ar4si). Each value is an int in -128..127;
 * `ear.status` is the worst tier among them (see lib/attest/trust.ts).
 */
export interface TrustVector {
  'instance-identity'?: number
  configuration?: number
  executables?: number
  'file-system'?: number
  hardware?: number
  'runtime-opaque'?: number
  'storage-opaque'?: number
  'sourced-data'?: number
}

/** Reference values by name (`tpm.pcr11`, `snp.measurement`…), as an RVPS would hold them. */
export interface ReferenceValues {
  /** Accepted values for `name` (hex strings for digests), or undefined when none is set. */
  get(name: string): readonly string[] | undefined
}

export interface VerifyContext {
  /** The digest the evidence must bind, raw (before the verifier fits it to its field). */
  readonly reportData: Uint8Array
  /** Hash of the init-data TOML, when the guest sent init-data. */
  readonly initDataDigest?: Uint8Array
  readonly referenceValues: ReferenceValues
}

export interface VerifierResult {
  /** TCB claims the verifier vouches for (hex strings for binary values); placed in the token. */
  readonly claims: Readonly<Record<string, unknown>>
  /** Its appraisal of those claims against the reference values. */
  readonly trust: TrustVector
}

export interface Verifier {
  readonly tee: TeeType
  /**
   * Checks `evidence` (untrusted JSON: validate it with a schema) and appraises it. Throws a
   * CofferError ERR_ATTEST_* when the evidence is malformed, a signature or certificate chain
   * fails, or the report data does not bind `ctx.reportData`. Measurements that merely differ
   * from the reference values are not an error: they lower `trust`, and the resource policy
   * decides.
   */
  verify(evidence: unknown, ctx: VerifyContext): Promise<VerifierResult>
}
