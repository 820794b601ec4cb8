/**
 * `WWW-Authenticate` challenges (RFC 7235 §4.1) as registries send them:
 * `Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"` or
 * `Basic realm="Registry"`. Several challenges may share one header, separated by commas.
 */
export interface Challenge {
  /** Lowercased: `basic`, `bearer`. */
  readonly scheme: string
  /** Parameter names lowercased; values unquoted. */
  readonly params: Readonly<Record<string, string>>
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y
const SPACE = /[ \t]*/y

/** Parses one or more header values. Malformed trailing text is ignored, never thrown on. */
export function parseChallenges(headers: string | readonly string[] | undefined): Challenge[] {
  if (headers === undefined) return []
  const values = typeof headers === 'string' ? [headers] : headers
  return values.flatMap(parseOne)
}

function parseOne(header: string): Challenge[] {
  const out: Challenge[] = []
  let i = 0
  // A sticky regex that fails resets lastIndex to 0, so only a match may move `i`.
  const skipSpace = (): void => {
    SPACE.lastIndex = i
    if (SPACE.exec(header)) i = SPACE.lastIndex
  }
  const token = (): string | undefined => {
    TOKEN.lastIndex = i
    const m = TOKEN.exec(header)
    if (!m) return undefined
    i = TOKEN.lastIndex
    return m[0]
  }
  const quoted = (): string => {
    let value = ''
    i++ // opening quote
    while (i < header.length && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < header.length) i++
      value += header[i++]
    }
    i = Math.min(i + 1, header.length) // closing quote, if any
    return value
  }

  while (i < header.length) {
    skipSpace()
    while (header[i] === ',') {
      i++
      skipSpace()
    }
    const scheme = token()
    if (!scheme) break
    const params: Record<string, string> = {}
    skipSpace()
    // Parameters: name=value pairs until the next bare token (the next scheme).
    while (i < header.length) {
      const save = i
      const name = token()
      skipSpace()
      if (!name || header[i] !== '=') {
        i = save
        break
      }
      i++
      skipSpace()
      const value = header[i] === '"' ? quoted() : (token() ?? '')
      params[name.toLowerCase()] = value
      skipSpace()
      if (header[i] === ',') {
        i++
        skipSpace()
      }
    }
    out.push({ scheme: scheme.toLowerCase(), params })
  }
  return out
}
