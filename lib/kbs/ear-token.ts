/**
 * The attestation token a KBS issues after verifying evidence: an EAR (draft-ietf-rats-ear) JWT
 * signed ES256 with the public key in the header, shaped like trustee's so resource policies and
 * tools written for trustee read it (see the spec sheet §2.1–2.2).
 */
import { createHash, randomUUID, type KeyObject } from 'node:crypto'
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose'
import type { TrustVector } from '../attest/types.js'
import { earStatus, type EarStatus } from '../attest/trust.js'
import { CofferError } from '../util/errors.js'
import { Lru } from '../util/lru.js'
import type { TeePubKey } from './protocol.js'

export const EAR_PROFILE = 'tag:github.com,2024:confidential-containers/Trustee'
export const TOKEN_ISSUER = 'coffer-kbs'

export interface AppraisalInput {
  tee: string
  /** The verifier's TCB claims. */
  claims: Readonly<Record<string, unknown>>
  trust: TrustVector
  /** The object whose hash the evidence bound: nonce, tee-pubkey, additional-evidence. */
  runtimeData: { nonce: string; 'tee-pubkey': TeePubKey; 'additional-evidence': string }
  reportData: string
  initData?: { digest: string; claims?: unknown }
}

export interface EarClaims {
  eat_profile: string
  iss: string
  iat: number
  exp: number
  jti: string
  'ear.verifier-id': { developer: string; build: string }
  submods: {
    cpu0: {
      'ear.status': EarStatus
      'ear.trustworthiness-vector': TrustVector
      'ear.appraisal-policy-id': string
      'ear.veraison.annotated-evidence': Record<string, unknown> & {
        runtime_data_claims: AppraisalInput['runtimeData']
      }
    }
  }
}

export interface TokenSigner {
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}

export async function issueEarToken(
  signer: TokenSigner,
  input: AppraisalInput,
  lifetimeSeconds: number,
  build: string,
  now = Date.now(),
): Promise<{ token: string; claims: EarClaims }> {
  const iat = Math.floor(now / 1000)
  const claims: EarClaims = {
    eat_profile: EAR_PROFILE,
    iss: TOKEN_ISSUER,
    iat,
    exp: iat + lifetimeSeconds,
    jti: randomUUID(),
    'ear.verifier-id': { developer: 'https://github.com/coffer-project/coffer', build },
    submods: {
      cpu0: {
        'ear.status': earStatus(input.trust),
        'ear.trustworthiness-vector': input.trust,
        'ear.appraisal-policy-id': 'default',
        'ear.veraison.annotated-evidence': {
          [input.tee]: input.claims,
          report_data: input.reportData,
          runtime_data_claims: input.runtimeData,
          ...(input.initData
            ? { init_data: input.initData.digest, init_data_claims: input.initData.claims ?? {} }
            : {}),
        },
      },
    },
  }
  const jwk = signer.publicKey.export({ format: 'jwk' })
  const token = await new SignJWT(claims as unknown as Record<string, unknown>)
    .setProtectedHeader({
      alg: 'ES256',
      typ: 'JWT',
      jwk: { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y!, alg: 'ES256' },
    })
    .sign(signer.privateKey)
  return { token, claims }
}

/**
 * Verifies a token this KBS (or a replica sharing its signing key) issued. The header's `jwk` is
 * never trusted: only the configured key verifies (trustee's `insecure_header_jwk=false`).
 */
export async function verifyEarToken(
  token: string,
  publicKey: KeyObject,
  now = Date.now(),
): Promise<EarClaims> {
  if (token.length > 64 * 1024)
    throw new CofferError('ERR_ATTEST_VERIFICATION_FAILED', 'the token is too large')
  // A guest sends the same token with every request: a token verified before with this key only
  // needs its expiry checked again. The cache is keyed by the exact bytes and the key.
  const cacheKey = `${keyId(publicKey)}.${token}`
  const cached = verified.get(cacheKey)
  if (cached) {
    if (cached.exp * 1000 > now) return cached
    throw new CofferError('ERR_ATTEST_VERIFICATION_FAILED', 'the token has expired')
  }
  const claims = await verifyUncached(token, publicKey, now)
  verified.set(cacheKey, claims)
  return claims
}

const verified = new Lru<string, EarClaims>(4096)
const keyIds = new WeakMap<KeyObject, string>()
function keyId(key: KeyObject): string {
  let id = keyIds.get(key)
  if (!id) {
    id = createHash('sha256')
      .update(key.export({ type: 'spki', format: 'der' }))
      .digest('hex')
    keyIds.set(key, id)
  }
  return id
}

async function verifyUncached(token: string, publicKey: KeyObject, now: number): Promise<EarClaims> {
  try {
    const { payload } = await jwtVerify(token, publicKey, {
      algorithms: ['ES256'],
      issuer: TOKEN_ISSUER,
      requiredClaims: ['exp', 'iat'],
      currentDate: new Date(now),
    })
    const claims = payload as unknown as EarClaims
    if (typeof claims.submods?.cpu0 !== 'object') throw new Error('no cpu0 submodule')
    return claims
  } catch (err) {
    const why = err instanceof joseErrors.JWTExpired ? 'the token has expired' : 'the token is not valid'
    throw new CofferError('ERR_ATTEST_VERIFICATION_FAILED', why, { cause: err })
  }
}

/** Where trustee's KBS looks for the session key in a token (spec §2.2, EAR path). */
export function teePubKeyOf(claims: EarClaims): unknown {
  return claims.submods.cpu0['ear.veraison.annotated-evidence']?.runtime_data_claims?.['tee-pubkey']
}
