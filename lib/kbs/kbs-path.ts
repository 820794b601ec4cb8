/**
 * Parses a request path under /kbs/v0 from the raw URL, before any percent-decoding: a segment is
 * accepted only if it already matches the segment grammar, so `..`, `%2e%2e`, `%2f`, empty or
 * doubled slashes can never reach a store key. The grammar is trustee's minus a leading `-` (as
 * in resource URIs), so no name can pass for a command-line option in tools that handle it.
 */
import { API_PREFIX } from './protocol.js'

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/

export interface KbsPath {
  /** First segment: `auth`, `attest`, `resource`, `resource-policy`, … */
  readonly endpoint: string
  /** The remaining segments, each valid. */
  readonly rest: readonly string[]
  readonly query: string
}

/** undefined when the path is outside the API or any segment is invalid. */
export function parseKbsPath(rawUrl: string): KbsPath | undefined {
  const q = rawUrl.indexOf('?')
  const path = q === -1 ? rawUrl : rawUrl.slice(0, q)
  const query = q === -1 ? '' : rawUrl.slice(q + 1)
  if (!path.startsWith(`${API_PREFIX}/`)) return undefined
  const segments = path.slice(API_PREFIX.length + 1).split('/')
  if (segments.length > 8 || !segments.every((s) => SEGMENT.test(s) && s !== '.' && s !== '..'))
    return undefined
  const [endpoint, ...rest] = segments
  return { endpoint: endpoint!, rest, query }
}
