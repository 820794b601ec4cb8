/**
 * Admin API authentication: a short-lived JWT signed by an administrator's private key (Ed25519 or
 * ECDSA P-256), checked against the public keys the KBS is configured with. This is trustee's
 * `auth_public_key` scheme (EdDSA JWT with iat/exp, as its kbs-client sends), widened to ES256
 * and several keys, and with a cap on lifetime so a leaked token is worth little.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { SignJWT, jwtVerify } from 'jose'
import { CofferError } from '../util/errors.js'

/** Longest admin token accepted (trustee's kbs-client issues 2 h tokens). */
export const MAX_ADMIN_TOKEN_LIFETIME_S = 2 * 3600
const CLOCK_TOLERANCE_S = 60

export function adminAlgorithm(key: KeyObject): 'EdDSA' | 'ES256' {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  throw new CofferError('ERR_KBS_ADMIN_KEY_INVALID', 'admin keys must be Ed25519 or ECDSA P-256')
}

export function parseAdminPublicKey(pem: string | Buffer, what: string): KeyObject {
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch (err) {
    throw new CofferError('ERR_KBS_ADMIN_KEY_INVALID', `${what} is not a PEM public key`, { cause: err })
  }
  adminAlgorithm(key)
  return key
}

export function parseAdminPrivateKey(pem: string | Buffer, what: string): KeyObject {
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch (err) {
    throw new CofferError('ERR_KBS_ADMIN_KEY_INVALID', `${what} is not an unencrypted PEM private key`, {
      cause: err,
    })
  }
  adminAlgorithm(key)
  return key
}

/** What a client sends: `Authorization: Bearer <this>`. */
export async function signAdminToken(privateKey: KeyObject, lifetimeS = 300): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: adminAlgorithm(privateKey), typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(`${lifetimeS}s`)
    .sign(privateKey)
}

/** Resolves if `authorization` carries a valid admin token for one of `keys`; ERR_KBS_UNAUTHORIZED otherwise. */
export async function verifyAdminToken(
  authorization: string | undefined,
  keys: readonly KeyObject[],
): Promise<void> {
  const m = /^Bearer ([A-Za-z0-9_.-]{1,8192})$/.exec(authorization ?? '')
  if (!m)
    throw new CofferError('ERR_KBS_UNAUTHORIZED', 'the admin API needs "Authorization: Bearer <admin JWT>"')
  for (const key of keys) {
    try {
      const { payload } = await jwtVerify(m[1]!, key, {
        algorithms: [adminAlgorithm(key)],
        requiredClaims: ['iat', 'exp'],
        clockTolerance: CLOCK_TOLERANCE_S,
      })
      if (payload.exp! - payload.iat! > MAX_ADMIN_TOKEN_LIFETIME_S)
        throw new CofferError(
          'ERR_KBS_UNAUTHORIZED',
          `admin tokens may live at most ${MAX_ADMIN_TOKEN_LIFETIME_S} s`,
        )
      if (payload.iat! > Date.now() / 1000 + CLOCK_TOLERANCE_S)
        throw new CofferError('ERR_KBS_UNAUTHORIZED', 'the admin token was issued in the future')
      return
    } catch (err) {
      if (err instanceof CofferError) throw err
      // Try the next key; the last failure is reported below without details (no oracle).
    }
  }
  throw new CofferError('ERR_KBS_UNAUTHORIZED', 'the admin token is not valid for this KBS')
}
