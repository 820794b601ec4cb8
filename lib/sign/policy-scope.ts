/**
 * Which requirements of a policy apply to an image (c/image `policy_eval.go`
 * `requirementsForImageRef`, `docker/policyconfiguration/naming.go`, `oci/layout/oci_transport.go`).
 * Only the most specific matching scope counts: the exact identity, then each namespace from the
 * longest down, then the transport's `""` scope, then `default`.
 */
import { realpath } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { ImageName } from '../oci/image-name.js'
import { formatDockerReference, type DockerReference } from '../oci/reference.js'
import type { Policy, PolicyRequirement } from './policy.js'

/** The identity and the namespaces (most specific first) an image is looked up under. */
export interface PolicyLookupKeys {
  readonly transport: string
  readonly identity: string
  readonly namespaces: readonly string[]
}

/** `host/repo:tag` or `host/repo@digest`, then `host/repo`, parents, `host[:port]`, `*.domain`s. */
export function dockerLookupKeys(ref: DockerReference): PolicyLookupKeys {
  const namespaces: string[] = []
  let name = `${ref.host}/${ref.repository}`
  for (;;) {
    namespaces.push(name)
    const slash = name.lastIndexOf('/')
    if (slash < 0) break
    name = name.slice(0, slash)
  }
  // Wildcard scopes carry no port (containers-policy.json.5: "*.example.com").
  let domain = name.startsWith('[') ? '' : name.replace(/:[0-9]+$/, '')
  for (let dot = domain.indexOf('.'); dot >= 0; dot = domain.indexOf('.')) {
    domain = domain.slice(dot + 1)
    namespaces.push(`*.${domain}`)
  }
  return { transport: 'docker', identity: formatDockerReference(ref), namespaces }
}

/**
 * An OCI layout is identified by its directory, symlinks resolved; the tag is not part of the
 * identity (c/image: `dir:tag` and `dir:` cannot be told apart statically). Namespaces are the
 * parent directories, never `/`.
 */
export async function ociLookupKeys(dir: string): Promise<PolicyLookupKeys> {
  const resolved = await realpath(dir).catch(() => resolve(dir))
  const namespaces: string[] = []
  for (let path = resolved; path !== '/' && path.lastIndexOf('/') >= 0;) {
    namespaces.push(path)
    path = path.slice(0, path.lastIndexOf('/')) || '/'
  }
  return { transport: 'oci', identity: resolved, namespaces }
}

export function lookupKeys(name: ImageName): Promise<PolicyLookupKeys> {
  return name.transport === 'docker' ? Promise.resolve(dockerLookupKeys(name.ref)) : ociLookupKeys(name.dir)
}

/** The requirements for an image and the scope they came from (`default` or `transports.T["scope"]`). */
export function requirementsFor(
  policy: Policy,
  keys: PolicyLookupKeys,
): { scope: string; requirements: PolicyRequirement[] } {
  const scopes = policy.transports?.[keys.transport]
  if (scopes) {
    for (const candidate of [keys.identity, ...keys.namespaces, '']) {
      const requirements = Object.hasOwn(scopes, candidate) ? scopes[candidate] : undefined
      if (requirements) return { scope: `transports.${keys.transport}["${candidate}"]`, requirements }
    }
  }
  return { scope: 'default', requirements: policy.default }
}
