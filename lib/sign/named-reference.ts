/**
 * Docker references as policy matching needs them: like docker/distribution
 * `reference.ParseNormalizedNamed`, a reference written without tag or digest stays **name-only**
 * (no implicit `:latest`), because the signedIdentity rules treat name-only references specially.
 */
import { parseDockerReference } from '../oci/reference.js'

export interface NamedReference {
  /** `host/path`, normalised (`busybox` → `docker.io/library/busybox`). */
  readonly name: string
  readonly tag?: string
  readonly digest?: string
  /** The canonical string: name, plus `:tag` or `@digest` when present. */
  readonly string: string
}

/** Parses a reference; undefined if it is not a valid docker reference (callers treat that as "no match"). */
export function parseNamed(input: string): NamedReference | undefined {
  let ref
  try {
    ref = parseDockerReference(input)
  } catch {
    return undefined
  }
  const name = `${ref.host}/${ref.repository}`
  const explicitTag = !input.includes('@') && input.indexOf(':', input.lastIndexOf('/') + 1) >= 0
  if (ref.digest) return { name, digest: ref.digest, string: `${name}@${ref.digest}` }
  if (explicitTag && ref.tag) return { name, tag: ref.tag, string: `${name}:${ref.tag}` }
  return { name, string: name }
}

/** True for a reference with neither tag nor digest. */
export function isNameOnly(ref: NamedReference): boolean {
  return ref.tag === undefined && ref.digest === undefined
}
