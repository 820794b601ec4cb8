/**
 * `signedIdentity`: does the docker reference a signature claims fit the image being used?
 * (c/image `signature/policy_reference_match.go`). Every parse failure is "no match".
 */
import { isNameOnly, parseNamed, type NamedReference } from './named-reference.js'
import type { SignedIdentity } from './policy.js'

/**
 * `intended` is the reference the image was requested by (undefined for transports without one,
 * such as `oci:`, where only exactReference and exactRepository can match).
 */
export function identityMatches(
  rule: SignedIdentity | undefined,
  intended: NamedReference | undefined,
  signedReference: string,
): boolean {
  const signature = parseNamed(signedReference)
  if (!signature) return false
  const type = rule?.type ?? 'matchRepoDigestOrExact'
  switch (type) {
    case 'matchExact':
      if (!intended || isNameOnly(intended) || isNameOnly(signature)) return false
      return signature.string === intended.string
    case 'matchRepoDigestOrExact':
      return intended !== undefined && repoDigestOrExact(intended, signature)
    case 'matchRepository':
      return intended !== undefined && signature.name === intended.name
    case 'exactReference': {
      const want = parseNamed((rule as { dockerReference: string }).dockerReference)
      if (!want || isNameOnly(want) || isNameOnly(signature)) return false
      return signature.string === want.string
    }
    case 'exactRepository': {
      const want = parseNamed((rule as { dockerRepository: string }).dockerRepository)
      return want !== undefined && signature.name === want.name
    }
    case 'remapIdentity': {
      if (!intended) return false
      const { prefix, signedPrefix } = rule as { prefix: string; signedPrefix: string }
      const remapped = remap(intended, prefix, signedPrefix)
      return remapped !== undefined && repoDigestOrExact(remapped, signature)
    }
  }
}

function repoDigestOrExact(intended: NamedReference, signature: NamedReference): boolean {
  if (isNameOnly(signature)) return false
  // A tag needs the exact reference. Pulled by digest, the repository suffices: the evaluator
  // separately checks the signed digest against the manifest, which was checked against the
  // requested digest when it was fetched.
  if (intended.tag !== undefined) return signature.string === intended.string
  if (intended.digest !== undefined) return signature.name === intended.name
  return false
}

/** Replaces `prefix` (matched on a `/` boundary of the name) with `signedPrefix`. */
function remap(ref: NamedReference, prefix: string, signedPrefix: string): NamedReference | undefined {
  const name = ref.name
  const matches = name === prefix || (name.startsWith(prefix) && name[prefix.length] === '/')
  if (!matches) return ref
  // c/image rewrites the string and parses it again *without* normalisation (reference.ParseNamed),
  // so a remapped result that is not fully qualified fails to match.
  const rewritten = signedPrefix + ref.string.slice(prefix.length)
  const parsed = parseNamed(rewritten)
  return parsed && parsed.string === rewritten ? parsed : undefined
}
