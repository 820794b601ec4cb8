import { CofferError } from '../util/errors.js'
import { parseDigest, type Digest } from './digest.js'

/**
 * Docker references as containers/image and docker/distribution `reference` parse them:
 * `[HOST[:PORT]/]NAME[:TAG][@DIGEST]`, with Docker Hub defaults (`alpine` →
 * `docker.io/library/alpine:latest`). A registry name may be a DNS name, an IPv4 address,
 * `localhost` or a bracketed IPv6 address; the first path component counts as a host only when it
 * contains `.` or `:` or is `localhost` (distribution's `splitDockerDomain`).
 */
export interface DockerReference {
  /** Registry host as used for credentials and endpoints: `docker.io`, `127.0.0.1:5000`. */
  readonly host: string
  /** Repository path inside the registry: `library/alpine`. */
  readonly repository: string
  readonly tag?: string
  readonly digest?: Digest
}

export const DOCKER_HUB_HOST = 'docker.io'
/** The API endpoint that serves `docker.io` (containers/image `dockerV2Hostname`). */
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io'
export const DEFAULT_TAG = 'latest'

/** distribution/reference: the whole name (host/path) must not exceed 255 characters. */
const MAX_NAME_LENGTH = 255

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const TAG = /^[\w][\w.-]{0,127}$/
const DOMAIN_LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/
const PORT = /^[0-9]+$/
const IPV6 = /^\[[a-fA-F0-9:.]+(?:%[a-zA-Z0-9]+)?\]$/

/** Parses a docker reference (without the `docker://` prefix). Throws ERR_OCI_REFERENCE_INVALID. */
export function parseDockerReference(input: string): DockerReference {
  const fail = (why: string): never => {
    throw new CofferError('ERR_OCI_REFERENCE_INVALID', `invalid image reference "${clip(input)}": ${why}`)
  }
  if (input.length === 0) fail('it is empty')
  if (/\s/.test(input)) fail('it contains whitespace')

  let rest = input
  let digest: Digest | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    try {
      digest = parseDigest(rest.slice(at + 1)).digest
    } catch (err) {
      fail((err as Error).message)
    }
    rest = rest.slice(0, at)
  }

  // A tag is what follows the last ':' after the last '/', so a host port is never taken for one.
  let tag: string | undefined
  const lastSlash = rest.lastIndexOf('/')
  const colon = rest.indexOf(':', lastSlash + 1)
  if (colon >= 0) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG.test(tag)) fail(`tag "${clip(tag)}" must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`)
  }
  if (tag !== undefined && digest !== undefined) {
    // containers/image refuses these for the docker transport too: which one would win is ambiguous.
    fail('a reference with both a tag and a digest is not supported; use one of them')
  }

  let host: string
  let path: string
  const slash = rest.indexOf('/')
  const first = slash >= 0 ? rest.slice(0, slash) : ''
  if (
    slash >= 0 &&
    (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))
  ) {
    host = first
    path = rest.slice(slash + 1)
    validateHost(host, fail)
  } else {
    host = DOCKER_HUB_HOST
    path = rest
  }
  if (host === 'index.docker.io') host = DOCKER_HUB_HOST
  if (host === DOCKER_HUB_HOST && !path.includes('/')) path = `library/${path}`

  if (path.length === 0) fail('the repository name is empty')
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      fail(
        component.toLowerCase() === component
          ? `repository component "${clip(component)}" must be lowercase letters and digits, separated by ".", "_", "__" or "-"`
          : `repository name must be lowercase ("${clip(component)}")`,
      )
    }
  }
  if (host.length + 1 + path.length > MAX_NAME_LENGTH)
    fail(`the name is longer than ${MAX_NAME_LENGTH} characters`)

  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG
  return { host, repository: path, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) }
}

function validateHost(host: string, fail: (why: string) => never): void {
  let name = host
  const portAt = host.startsWith('[') ? host.indexOf(']:') + 1 : host.lastIndexOf(':')
  if (portAt > 0) {
    const port = host.slice(portAt + 1)
    if (!PORT.test(port) || Number(port) > 65535) fail(`invalid port "${clip(port)}"`)
    name = host.slice(0, portAt)
  }
  if (name.startsWith('[')) {
    if (!IPV6.test(name)) fail(`invalid IPv6 registry address "${clip(name)}"`)
    return
  }
  if (!name.split('.').every((label) => DOMAIN_LABEL.test(label)))
    fail(`invalid registry host "${clip(name)}"`)
}

/** `host/repository` — the name without tag or digest. */
export function dockerName(ref: DockerReference): string {
  return `${ref.host}/${ref.repository}`
}

/** The canonical string: `host/repo:tag` or `host/repo@digest`. */
export function formatDockerReference(ref: DockerReference): string {
  return dockerName(ref) + (ref.digest ? `@${ref.digest}` : `:${ref.tag ?? DEFAULT_TAG}`)
}

/** The `reference` path segment for manifest requests: the digest if present, else the tag. */
export function manifestReference(ref: DockerReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG
}

function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 97)}...` : s
}
