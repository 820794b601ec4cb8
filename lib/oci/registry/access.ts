import { DOCKER_HUB_ENDPOINT, DOCKER_HUB_HOST, type DockerReference } from '../reference.js'
import { resolveCredentials, parseCredsFlag, type AuthFileContent, type Credentials } from './credentials.js'
import { Registry, type RegistryOptions } from './registry.js'
import { pullSources, pushDestination, type RegistriesConf } from './registries-conf.js'
import { Repository } from './repository.js'

/** How to reach registries for one side of a copy (skopeo's `--src-*` / `--dest-*` flags). */
export interface RegistryAccess {
  /** `USER:PASSWORD` (skopeo `--creds`); wins over auth files. */
  creds?: string
  /** Only this auth file is read (skopeo `--authfile`, `REGISTRY_AUTH_FILE`). */
  authfile?: string
  /** An in-memory auth.json (from a KBS; never written to disk); wins over `authfile`. */
  authFileContent?: AuthFileContent
  /** Explicit `--tls-verify`; when unset, registries.conf `insecure` decides. */
  tlsVerify?: boolean
  /** Mirrors and rewrites (containers-registries.conf). */
  registriesConf?: RegistriesConf
  env?: NodeJS.ProcessEnv
  homeDir?: string
  userAgent?: string
  retry?: RegistryOptions['retry']
  onRetry?: RegistryOptions['onRetry']
}

/** One place a repository can be read from or written to. */
export interface RepositoryEndpoint {
  readonly repository: Repository
  /** True for a registries.conf mirror (tried before the origin on pulls). */
  readonly mirror: boolean
}

/** The repositories to pull `ref` from, mirrors first, origin last (registries.conf semantics). */
export function pullEndpoints(ref: DockerReference, access: RegistryAccess): RepositoryEndpoint[] {
  const name = `${ref.host}/${ref.repository}`
  const sources = access.registriesConf
    ? pullSources(access.registriesConf, name, ref.digest !== undefined)
    : [{ endpoint: { location: ref.host, insecure: false, mirror: false }, repository: name }]
  return sources.map((s) => ({
    repository: openRepository(s.repository, s.endpoint.insecure, access),
    mirror: s.endpoint.mirror,
  }))
}

/** The repository to push `ref` to: always the name as written (registries.conf rewrites and mirrors apply to pulls only; `insecure` and `blocked` still count). */
export function pushEndpoint(ref: DockerReference, access: RegistryAccess): Repository {
  const name = `${ref.host}/${ref.repository}`
  const target = access.registriesConf
    ? pushDestination(access.registriesConf, name)
    : { endpoint: { location: ref.host, insecure: false, mirror: false }, repository: name }
  return openRepository(target.repository, target.endpoint.insecure, access)
}

function openRepository(hostAndPath: string, insecure: boolean, access: RegistryAccess): Repository {
  const slash = hostAndPath.indexOf('/')
  const host = hostAndPath.slice(0, slash)
  const path = hostAndPath.slice(slash + 1)
  let fixedCreds: Credentials | undefined
  if (access.creds !== undefined) fixedCreds = parseCredsFlag(access.creds)
  const registry = new Registry(host === DOCKER_HUB_HOST ? DOCKER_HUB_ENDPOINT : host, {
    tlsVerify: access.tlsVerify ?? !insecure,
    credentials: async () =>
      fixedCreds ??
      resolveCredentials(host, path, {
        ...(access.authfile !== undefined ? { authfile: access.authfile } : {}),
        ...(access.authFileContent ? { authFileContent: access.authFileContent } : {}),
        ...(access.env ? { env: access.env } : {}),
        ...(access.homeDir ? { homeDir: access.homeDir } : {}),
      }),
    ...(access.userAgent ? { userAgent: access.userAgent } : {}),
    ...(access.retry ? { retry: access.retry } : {}),
    ...(access.onRetry ? { onRetry: access.onRetry } : {}),
  })
  return new Repository(registry, path)
}
