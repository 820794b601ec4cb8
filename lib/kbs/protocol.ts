/**
 * The KBS attestation protocol (RCAR) as trustee 0.4 speaks it: wire shapes and constants,
 * checked field by field against kbs-types (see ../shared/specs/kbs-and-attestation.md §1).
 * Everything a peer sends passes through these schemas first.
 */
import { z } from 'zod'
import { TEE_TYPES } from '../attest/types.js'

/** The only version trustee's KBS accepts (`=0.4.0`), and what its guest sends. */
export const KBS_PROTOCOL_VERSION = '0.4.0'
export const API_PREFIX = '/kbs/v0'
export const SESSION_COOKIE = 'kbs-session-id'

const jsonValue: z.ZodType<unknown> = z.unknown()

/** POST /auth body (kbs-types `Request`). */
export const AuthRequestSchema = z.object({
  version: z.string().max(32),
  tee: z.string().max(32),
  'extra-params': jsonValue.optional(),
})
export type AuthRequest = z.infer<typeof AuthRequestSchema>

/** POST /auth response (kbs-types `Challenge`); `extra-params` is the JSON string "" for every TEE but `se`. */
export interface Challenge {
  nonce: string
  'extra-params': unknown
}

const b64url = z.string().regex(/^[A-Za-z0-9_-]*$/, 'must be base64url without padding')

/** The session key a guest sends in its runtime data (kbs-types `TeePubKey`). */
export const TeePubKeySchema = z.discriminatedUnion('kty', [
  z.object({
    kty: z.literal('RSA'),
    alg: z.enum(['RSA-OAEP-256', 'RSA1_5']),
    n: b64url.min(340).max(1400),
    e: b64url.min(1).max(12),
  }),
  z.object({
    kty: z.literal('EC'),
    crv: z.enum(['P-256', 'P-521']),
    alg: z.literal('ECDH-ES+A256KW'),
    x: b64url.min(1).max(100),
    y: b64url.min(1).max(100),
  }),
])
export type TeePubKey = z.infer<typeof TeePubKeySchema>

/** POST /attest body (kbs-types `Attestation`, 0.4.0). */
export const AttestationSchema = z.object({
  'init-data': z
    .object({ format: z.string().max(32), body: z.string().max(256 * 1024) })
    .nullable()
    .optional(),
  'runtime-data': z.object({
    nonce: z.string().max(1024),
    'tee-pubkey': TeePubKeySchema,
  }),
  'tee-evidence': z.object({
    primary_evidence: jsonValue,
    additional_evidence: z
      .string()
      .max(1024 * 1024)
      .optional(),
  }),
})
export type Attestation = z.infer<typeof AttestationSchema>

/** POST /attest response. */
export const AttestResponseSchema = z.object({
  token: z
    .string()
    .min(1)
    .max(64 * 1024),
})

/** A resource response: flattened JWE with every member base64url (kbs-types `Response`). */
export const JweResponseSchema = z.object({
  protected: b64url.min(1),
  encrypted_key: b64url,
  iv: b64url.min(1),
  ciphertext: b64url,
  tag: b64url.min(1),
})
export type JweResponse = z.infer<typeof JweResponseSchema>

/** RFC 7807-style error body every non-200 carries (kbs `ErrorInformation`). */
export const ErrorInformationSchema = z.object({ type: z.string(), detail: z.string() })
export const ERROR_TYPE_PREFIX = 'https://github.com/confidential-containers/kbs/errors/'

export function isKnownTee(tee: string): tee is (typeof TEE_TYPES)[number] {
  return (TEE_TYPES as readonly string[]).includes(tee)
}
