/**
 * containers-policy.json (c/image `docs/containers-policy.json.5.md`, `signature/policy_types.go`,
 * `policy_config.go`): which images may be used, per transport and scope.
 *
 * Parsing is strict as in c/image: an unknown field, a missing `default`, an empty requirement list
 * or a malformed scope rejects the whole file (ERR_SIGN_POLICY_INVALID), so a typo never silently
 * weakens a policy. Requirements that parse but that coffer cannot evaluate (Fulcio, Rekor, PKI,
 * X.509 key types, `signedBaseLayer`) are refused when an image is evaluated against them
 * (ERR_SIGN_UNSUPPORTED), never accepted.
 */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { describeIssues } from '../oci/schemas.js'
import { CofferError } from '../util/errors.js'
import { readOptionalFileLimited } from '../util/io.js'
import { MAX_POLICY_BYTES } from './limits.js'
import { isNameOnly, parseNamed } from './named-reference.js'
import { findDuplicateKey } from './strict-json.js'

const namedReference = (what: string, allowNameOnly: boolean) =>
  z.string().refine(
    (s) => {
      const ref = parseNamed(s)
      return ref !== undefined && (allowNameOnly || !isNameOnly(ref))
    },
    { message: `${what} must be a valid docker reference${allowNameOnly ? '' : ' with a tag or digest'}` },
  )

/** `host[:port]`, `host/ns`, `host/ns/repo`: a remapIdentity prefix (c/image `validateIdentityRemappingPrefix`). */
const remapPrefix = z
  .string()
  .refine((s) => /^[a-z0-9.-]+(?::[0-9]+)?(?:\/[a-z0-9._-]+)*$/i.test(s) && !s.includes('//'), {
    message: 'must be host[:port][/namespace…] without tag, digest or wildcard',
  })

export const signedIdentitySchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('matchExact') }),
  z.strictObject({ type: z.literal('matchRepoDigestOrExact') }),
  z.strictObject({ type: z.literal('matchRepository') }),
  z.strictObject({
    type: z.literal('exactReference'),
    dockerReference: namedReference('dockerReference', false),
  }),
  z.strictObject({
    type: z.literal('exactRepository'),
    dockerRepository: namedReference('dockerRepository', true),
  }),
  z.strictObject({ type: z.literal('remapIdentity'), prefix: remapPrefix, signedPrefix: remapPrefix }),
])
export type SignedIdentity = z.infer<typeof signedIdentitySchema>

/** `*Data` fields are base64 of the file contents (Go marshals []byte that way). */
const base64Data = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')
  .transform((s): Uint8Array => Buffer.from(s, 'base64'))
  .refine((b) => b.length > 0, 'must not be empty')

const nonEmptyPath = z.string().min(1)

const signedBy = z
  .strictObject({
    type: z.literal('signedBy'),
    keyType: z.enum(['GPGKeys', 'signedByGPGKeys', 'X509Certificates', 'signedByX509CAs']),
    keyPath: nonEmptyPath.optional(),
    keyPaths: z.array(nonEmptyPath).min(1).optional(),
    keyData: base64Data.optional(),
    signedIdentity: signedIdentitySchema.optional(),
  })
  .refine((r) => [r.keyPath, r.keyPaths, r.keyData].filter((v) => v !== undefined).length === 1, {
    message: 'signedBy needs exactly one of keyPath, keyPaths, keyData',
  })

const fulcio = z.strictObject({
  caPath: nonEmptyPath.optional(),
  caData: base64Data.optional(),
  oidcIssuer: z.string().optional(),
  subjectEmail: z.string().optional(),
})
const pki = z.strictObject({
  caRootsPath: nonEmptyPath.optional(),
  caRootsData: base64Data.optional(),
  caIntermediatesPath: nonEmptyPath.optional(),
  caIntermediatesData: base64Data.optional(),
  subjectEmail: z.string().optional(),
  subjectHostname: z.string().optional(),
})

const sigstoreSigned = z
  .strictObject({
    type: z.literal('sigstoreSigned'),
    keyPath: nonEmptyPath.optional(),
    keyPaths: z.array(nonEmptyPath).min(1).optional(),
    keyData: base64Data.optional(),
    keyDatas: z.array(base64Data).min(1).optional(),
    fulcio: fulcio.optional(),
    pki: pki.optional(),
    rekorPublicKeyPath: nonEmptyPath.optional(),
    rekorPublicKeyPaths: z.array(nonEmptyPath).min(1).optional(),
    rekorPublicKeyData: base64Data.optional(),
    rekorPublicKeyDatas: z.array(base64Data).min(1).optional(),
    signedIdentity: signedIdentitySchema.optional(),
  })
  .refine(
    (r) =>
      [r.keyPath, r.keyPaths, r.keyData, r.keyDatas, r.fulcio, r.pki].filter((v) => v !== undefined)
        .length === 1,
    { message: 'sigstoreSigned needs exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki' },
  )
  .refine(
    (r) =>
      [r.rekorPublicKeyPath, r.rekorPublicKeyPaths, r.rekorPublicKeyData, r.rekorPublicKeyDatas].filter(
        (v) => v !== undefined,
      ).length <= 1,
    { message: 'sigstoreSigned takes at most one rekorPublicKey* field' },
  )

// Discriminated by `type`, so a wrong or missing type names the allowed ones instead of "Invalid input".
export const requirementSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('insecureAcceptAnything') }),
  z.strictObject({ type: z.literal('reject') }),
  signedBy,
  sigstoreSigned,
  z.strictObject({ type: z.literal('signedBaseLayer'), baseLayerIdentity: z.unknown() }),
])
export type PolicyRequirement = z.infer<typeof requirementSchema>
export type SignedByRequirement = Extract<PolicyRequirement, { type: 'signedBy' }>
export type SigstoreSignedRequirement = Extract<PolicyRequirement, { type: 'sigstoreSigned' }>

const requirements = z.array(requirementSchema).min(1, 'a list of requirements must not be empty').max(1000)

export const policySchema = z.strictObject({
  default: requirements,
  transports: z.record(z.string(), z.record(z.string(), requirements)).optional(),
})
export type Policy = z.infer<typeof policySchema>

/** Transports c/image knows; scopes of these are validated, others are kept as they are. */
const PATH_SCOPED = new Set(['dir', 'oci', 'oci-archive', 'docker-archive', 'sif', 'tarball'])

/** Parses policy.json bytes. Throws ERR_SIGN_POLICY_INVALID naming the first problems. */
export function parsePolicy(bytes: Uint8Array, source = 'policy.json'): Policy {
  const text = Buffer.from(bytes).toString('utf8')
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new CofferError('ERR_SIGN_POLICY_INVALID', `${source} is not valid JSON`)
  }
  const duplicate = findDuplicateKey(text)
  if (duplicate !== undefined)
    throw new CofferError('ERR_SIGN_POLICY_INVALID', `${source}: duplicate key "${clip(duplicate)}"`)
  const parsed = policySchema.safeParse(json)
  if (!parsed.success) {
    throw new CofferError('ERR_SIGN_POLICY_INVALID', `${source}: ${describeIssues(parsed.error)}`)
  }
  for (const [transport, scopes] of Object.entries(parsed.data.transports ?? {})) {
    for (const scope of Object.keys(scopes)) {
      const why = scopeProblem(transport, scope)
      if (why)
        throw new CofferError(
          'ERR_SIGN_POLICY_INVALID',
          `${source}: scope "${clip(scope)}" of transport "${clip(transport)}": ${why}`,
        )
    }
  }
  return parsed.data
}

/** c/image `ValidatePolicyConfigurationScope` per transport; undefined when the scope is fine. */
function scopeProblem(transport: string, scope: string): string | undefined {
  if (scope === '') return undefined
  if (transport === 'docker' || transport === 'atomic') {
    if (scope.startsWith('*.')) {
      return /^\*\.[a-z0-9-]+(?:\.[a-z0-9-]+)*$/i.test(scope)
        ? undefined
        : 'a wildcard scope must be *.DOMAIN'
    }
    if (scope.includes('://')) return 'a scope names no URL scheme'
    // A full reference, a repository, a namespace or host[:port]: the name must parse.
    const named = parseNamed(scope.includes('/') ? scope : `${scope}/x`)
    return named ? undefined : 'not a docker reference, repository, namespace or host'
  }
  if (PATH_SCOPED.has(transport)) {
    const path = scope.split(':')[0]!
    if (!path.startsWith('/')) return 'must be an absolute path'
    if (path === '/') return '"/" is not allowed; use the "" scope'
    if (/\/\.{0,2}(?:\/|$)/.test(path) || path.endsWith('/')) return 'must be a clean path'
  }
  return undefined
}

/**
 * The policy file skopeo would use: `$HOME/.config/containers/policy.json` if it exists, else
 * `/etc/containers/policy.json`. Throws ERR_SIGN_POLICY_INVALID if neither exists.
 */
export async function loadPolicy(path?: string, o: { homeDir?: string } = {}): Promise<Policy> {
  const candidates = path
    ? [path]
    : [join(o.homeDir ?? homedir(), '.config/containers/policy.json'), '/etc/containers/policy.json']
  for (const candidate of candidates) {
    const bytes = await readOptionalFileLimited(
      candidate,
      MAX_POLICY_BYTES,
      candidate,
      'ERR_SIGN_POLICY_INVALID',
    )
    if (bytes) return parsePolicy(bytes, candidate)
  }
  throw new CofferError(
    'ERR_SIGN_POLICY_INVALID',
    path ? `policy file ${path} does not exist` : `no policy file (${candidates.join(', ')})`,
  )
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s
}
