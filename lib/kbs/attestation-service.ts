/**
 * The built-in attestation service: checks one /attest request against its session, lets the TEE's
 * verifier check the evidence and its binding to (nonce, tee-pubkey), and issues the EAR token.
 */
import { createHash } from 'node:crypto'
import { parse as parseToml } from 'smol-toml'
import { runtimeDataDigest, type RuntimeData } from '../attest/report-data.js'
import type { Verifier } from '../attest/types.js'
import { CofferError } from '../util/errors.js'
import { issueEarToken, type EarClaims, type TokenSigner } from './ear-token.js'
import { KbsError } from './kbs-error.js'
import type { Attestation } from './protocol.js'
import type { ReferenceValueStore } from './reference-values.js'
import type { Session } from './sessions.js'

export interface AttestationServiceOptions {
  verifiers: ReadonlyMap<string, Verifier>
  referenceValues: ReferenceValueStore
  signer: TokenSigner
  tokenLifetimeS: number
  build: string
  /** Called on every use of a verifier that proves nothing (sample). */
  onInsecureVerifier?: (tee: string) => void
}

export interface AttestationResult {
  token: string
  claims: EarClaims
}

export class AttestationService {
  constructor(private readonly o: AttestationServiceOptions) {}

  async attest(session: Session, body: Attestation): Promise<AttestationResult> {
    const runtime = body['runtime-data']
    if (runtime.nonce !== session.nonce)
      throw new KbsError('AttestationError', 'the nonce does not match this session')
    const verifier = this.o.verifiers.get(session.tee)
    if (!verifier) throw new KbsError('AttestationError', `TEE "${session.tee}" is not enabled on this KBS`)
    const additional = body['tee-evidence'].additional_evidence ?? ''
    if (additional !== '')
      throw new KbsError('AttestationError', 'additional (device) evidence is not supported by this KBS')
    const runtimeData: RuntimeData & { 'tee-pubkey': (typeof runtime)['tee-pubkey'] } = {
      nonce: runtime.nonce,
      'tee-pubkey': runtime['tee-pubkey'],
      'additional-evidence': additional,
    }
    const reportData = runtimeDataDigest(runtimeData, session.hash)
    const initData = body['init-data'] ? digestInitData(body['init-data']) : undefined
    if (session.tee === 'sample') this.o.onInsecureVerifier?.(session.tee)
    let result
    try {
      result = await verifier.verify(body['tee-evidence'].primary_evidence, {
        reportData,
        ...(initData ? { initDataDigest: initData.digest } : {}),
        referenceValues: await this.o.referenceValues.snapshot(),
      })
    } catch (err) {
      if (err instanceof CofferError && err.code.startsWith('ERR_ATTEST_'))
        throw new KbsError('AttestationError', `evidence rejected: ${err.message}`, { cause: err })
      throw err
    }
    return issueEarToken(
      this.o.signer,
      {
        tee: session.tee,
        claims: result.claims,
        trust: result.trust,
        runtimeData,
        reportData: Buffer.from(reportData).toString('hex'),
        ...(initData
          ? { initData: { digest: Buffer.from(initData.digest).toString('hex'), claims: initData.claims } }
          : {}),
      },
      this.o.tokenLifetimeS,
      this.o.build,
    )
  }
}

/**
 * Init-data (trustee docs/initdata.md): a TOML document with `version`, `algorithm` and a `[data]`
 * table; its digest is the named hash over the whole text, which the TEE binds (PCR8, HOST_DATA,
 * MRCONFIGID). Its `[data]` becomes `init_data_claims` for policies.
 */
function digestInitData(initData: { format: string; body: string }): { digest: Uint8Array; claims: unknown } {
  if (initData.format !== 'toml')
    throw new KbsError(
      'AttestationError',
      `init-data format "${initData.format}" is not supported (only toml)`,
    )
  let doc: Record<string, unknown>
  try {
    doc = parseToml(initData.body) as Record<string, unknown>
  } catch {
    throw new KbsError('AttestationError', 'init-data is not valid TOML')
  }
  const algorithm = doc.algorithm
  if (algorithm !== 'sha256' && algorithm !== 'sha384' && algorithm !== 'sha512')
    throw new KbsError('AttestationError', 'init-data "algorithm" must be sha256, sha384 or sha512')
  return { digest: createHash(algorithm).update(initData.body, 'utf8').digest(), claims: doc.data ?? {} }
}
