import { CofferError } from '../util/errors.js'

/**
 * A KBS resource URI (guest-components `attestation-agent/docs/RESOURCE_URI.md`):
 * `kbs[+<plugin>]://[<host>[:port]]/<repository>/<type>/<tag>[?query]`. The plugin defaults to
 * `resource`; the host is informational only (a guest asks the KBS it is configured with).
 */
export interface ResourceUri {
  readonly plugin: string
  readonly host?: string
  readonly repository: string
  readonly type: string
  readonly tag: string
  readonly query?: string
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const PLUGIN = /^[a-z0-9][a-z0-9_-]{0,63}$/

/** Parses `kbs:///repo/type/tag` and its variants; ERR_KBS_RESOURCE_URI_INVALID otherwise. */
export function parseResourceUri(input: string): ResourceUri {
  const fail = (why: string): never => {
    throw new CofferError(
      'ERR_KBS_RESOURCE_URI_INVALID',
      `invalid KBS resource URI "${input.slice(0, 200)}": ${why}; expected kbs:///<repository>/<type>/<tag>`,
    )
  }
  const m = /^kbs(?:\+([^:/]+))?:\/\/([^/?#]*)(\/[^?#]*)(?:\?([^#]*))?$/.exec(input)
  if (!m) return fail('not of the form kbs://[host]/path')
  const [, plugin = 'resource', host, path, query] = m
  if (!PLUGIN.test(plugin)) fail(`plugin "${plugin}" is not valid`)
  const segments = path!.slice(1).split('/')
  if (segments.length !== 3) fail('the path must have exactly three segments')
  for (const s of segments)
    if (!SEGMENT.test(s) || s === '.' || s === '..') fail(`path segment "${s}" is not valid`)
  const [repository, type, tag] = segments as [string, string, string]
  return { plugin, ...(host ? { host } : {}), repository, type, tag, ...(query ? { query } : {}) }
}

/** The canonical form: `kbs:///repo/type/tag` (host dropped, as the guest ignores it). */
export function formatResourceUri(u: ResourceUri): string {
  return `kbs${u.plugin === 'resource' ? '' : `+${u.plugin}`}:///${u.repository}/${u.type}/${u.tag}${u.query ? `?${u.query}` : ''}`
}

/** The KBS path serving it: `/kbs/v0/<plugin>/<repo>/<type>/<tag>[?query]`. */
export function resourcePath(u: ResourceUri): string {
  return `/kbs/v0/${u.plugin}/${u.repository}/${u.type}/${u.tag}${u.query ? `?${u.query}` : ''}`
}
