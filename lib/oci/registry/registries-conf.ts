import { readdir } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { parse as parseToml, TomlError } from 'smol-toml'
import { z } from 'zod'
import { CofferError } from '../../util/errors.js'
import { readOptionalFileLimited } from '../../util/io.js'
import { MAX_REGISTRIES_CONF_BYTES } from '../../util/limits.js'

/**
 * containers-registries.conf(5), version 2: which `[[registry]]` table governs an image name, where its
 * pulls really go (prefix → location rewrite, mirrors) and whether it is blocked. Semantics follow
 * c/image `pkg/sysregistriesv2` (spec §4.4). Short-name settings (`unqualified-search-registries`,
 * `short-name-mode`, `[aliases]`) and `credential-helpers` are accepted and ignored: coffer only takes
 * fully qualified references.
 */

/** Where a mirror may be used: c/image `pull-from-mirror`; unset means `all`. */
export type PullFromMirror = 'all' | 'digest-only' | 'tag-only'

/** One place to pull from: a registry's primary location or one of its mirrors. */
export interface Endpoint {
  /** `host[:port][/path-prefix]`, without a scheme or trailing `/`. */
  location: string
  /** Plain HTTP and unverified TLS are allowed. */
  insecure: boolean
  mirror: boolean
  /** Only on mirrors, and only when set to something other than the default. */
  pullFromMirror?: PullFromMirror
}

/** One `[[registry]]` table after validation and defaulting. */
export interface RegistryEntry {
  /** `host[:port][/ns…]` or `*.domain`; defaults to `location`. */
  prefix: string
  /** Physical location of the prefix-rooted namespace; `''` only for a wildcard prefix (no rewrite). */
  location: string
  insecure: boolean
  blocked: boolean
  /** Mirrors are used only for pulls by digest (excludes per-mirror `pull-from-mirror`). */
  mirrorByDigestOnly: boolean
  mirrors: Endpoint[]
  /** The file that defined this entry, for messages. */
  source: string
}

/** The merged configuration: main file plus drop-ins. */
export interface RegistriesConf {
  /** Unique by prefix, sorted by prefix (as c/image keeps them). */
  registries: RegistryEntry[]
  /** Files actually read, in load order. */
  sources: string[]
}

/** A pull or push target: the endpoint to contact and the reference rewritten for it. */
export interface RegistrySource {
  endpoint: Endpoint
  /** `host[:port]/path` to use on that endpoint. */
  repository: string
}

/** Where a loader looks. */
export interface LoadRegistriesConfOptions {
  /** `--registries-conf`: only this file (missing → ERR_NOT_FOUND) and its `<path>.d/` drop-ins. */
  path?: string
  /** For `HOME` and `CONTAINERS_REGISTRIES_CONF`; default `process.env`. */
  env?: NodeJS.ProcessEnv
  /** Default: `$HOME`, else `os.homedir()`. */
  homeDir?: string
  /** The system file; default {@link SYSTEM_REGISTRIES_CONF}. Tests point it elsewhere. */
  systemPath?: string
}

export const SYSTEM_REGISTRIES_CONF = '/etc/containers/registries.conf'
const USER_REGISTRIES_CONF = '.config/containers/registries.conf'

/**
 * Loads the configuration the way containers-registries.conf.d(5) orders it. With an explicit path
 * (`o.path`, else `CONTAINERS_REGISTRIES_CONF` as podman and c/image's `pkg/cli/environment` read it):
 * that file, then `<path>.d/*.conf`. Otherwise `~/.config/containers/registries.conf` if it exists, then
 * `~/.config/containers/registries.conf.d/*.conf`; else the system file, its `.d/*.conf`, then the
 * user's `.d/*.conf`. Drop-ins load in name order and replace `[[registry]]` tables with the same prefix.
 * Missing default files and directories are simply empty.
 */
export async function loadRegistriesConf(o: LoadRegistriesConfOptions = {}): Promise<RegistriesConf> {
  const env = o.env ?? process.env
  const home = o.homeDir ?? nonEmpty(env.HOME) ?? homedir()
  const userFile = join(home, USER_REGISTRIES_CONF)
  const explicit = o.path ?? nonEmpty(env.CONTAINERS_REGISTRIES_CONF)

  let conf: RegistriesConf
  let dropInDirs: string[]
  if (explicit !== undefined) {
    const text = await readConfFile(explicit)
    if (text === undefined) {
      throw new CofferError('ERR_NOT_FOUND', `registries configuration ${explicit} does not exist`)
    }
    conf = parseRegistriesConf(text, explicit)
    // c/image would add the system and user drop-in directories here too; an explicit file is meant to be
    // the whole configuration, so only its own `.d` directory joins it.
    dropInDirs = [`${explicit}.d`]
  } else {
    const userText = await readConfFile(userFile)
    if (userText !== undefined) {
      conf = parseRegistriesConf(userText, userFile)
      dropInDirs = [`${userFile}.d`]
    } else {
      const systemFile = o.systemPath ?? SYSTEM_REGISTRIES_CONF
      const systemText = await readConfFile(systemFile)
      conf =
        systemText === undefined
          ? { registries: [], sources: [] }
          : parseRegistriesConf(systemText, systemFile)
      dropInDirs = [`${systemFile}.d`, `${userFile}.d`]
    }
  }

  for (const dir of dropInDirs) {
    for (const file of await listDropIns(dir)) {
      const text = await readConfFile(file)
      if (text === undefined) continue // removed since the listing: an expected race
      conf = mergeDropIn(conf, parseRegistriesConf(text, file))
    }
  }
  return conf
}

// --- parsing ----------------------------------------------------------------------------------------

const PULL_FROM_MIRROR = z.enum(['all', 'digest-only', 'tag-only', ''])

// Loose: files are shared with podman/CRI-O, which may know newer keys; c/image ignores unknown keys too.
const MirrorSchema = z.looseObject({
  location: z.string().optional(),
  insecure: z.boolean().optional(),
  'pull-from-mirror': PULL_FROM_MIRROR.optional(),
})
const RegistrySchema = z.looseObject({
  prefix: z.string().optional(),
  location: z.string().optional(),
  insecure: z.boolean().optional(),
  blocked: z.boolean().optional(),
  'mirror-by-digest-only': z.boolean().optional(),
  'pull-from-mirror': z.string().optional(),
  mirror: z.array(MirrorSchema).optional(),
})
const RegistriesConfSchema = z.looseObject({
  registry: z.array(RegistrySchema).optional(),
  // Accepted, unused (short names are not resolved by coffer).
  'unqualified-search-registries': z.array(z.string()).optional(),
  'short-name-mode': z.string().optional(),
  aliases: z.record(z.string(), z.string()).optional(),
  'credential-helpers': z.array(z.string()).optional(),
})

/**
 * Parses and validates one registries.conf (or drop-in) text. `source` names the file in messages.
 * Throws ERR_REGISTRIES_CONF_INVALID for bad TOML (with line and column), the version 1 format, and
 * the inconsistencies c/image rejects (`postProcessRegistries`).
 */
export function parseRegistriesConf(text: string, source: string): RegistriesConf {
  const invalid = (why: string): CofferError =>
    new CofferError('ERR_REGISTRIES_CONF_INVALID', `${source}: ${why}`)

  let toml: Record<string, unknown>
  try {
    toml = parseToml(text) as Record<string, unknown>
  } catch (err) {
    if (!(err instanceof TomlError)) throw err
    // smol-toml's message also carries a code excerpt; the first line says what is wrong.
    const what = err.message.split('\n', 1)[0]!.replace(/^Invalid TOML document: /, '')
    throw new CofferError(
      'ERR_REGISTRIES_CONF_INVALID',
      `${source}: invalid TOML at line ${err.line}, column ${err.column}: ${what}`,
      { cause: err },
    )
  }

  if (Object.hasOwn(toml, 'registries')) {
    throw invalid(
      'this is the version 1 format ([registries.search], [registries.insecure], [registries.block]), which ' +
        'coffer does not read; rewrite it as version 2 [[registry]] tables (containers-registries.conf(5))',
    )
  }

  const parsed = RegistriesConfSchema.safeParse(toml)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const where = issue.path.length ? `${issue.path.map(String).join('.')}: ` : ''
    throw invalid(`${where}${issue.message}`)
  }

  // Within one file the first table for a prefix wins (c/image keeps the first, silently).
  const byPrefix = new Map<string, RegistryEntry>()
  for (const [i, raw] of (parsed.data.registry ?? []).entries()) {
    const entry = toEntry(raw, source, (why) => invalid(`registry[${i}]: ${why}`))
    if (!byPrefix.has(entry.prefix)) byPrefix.set(entry.prefix, entry)
  }
  const registries = [...byPrefix.values()]
  checkConflicts(registries, invalid)
  return { registries: sortByPrefix(registries), sources: [source] }
}

function toEntry(
  raw: z.infer<typeof RegistrySchema>,
  source: string,
  invalid: (why: string) => CofferError,
): RegistryEntry {
  const location = parseLocation(raw.location ?? '', invalid)
  let prefix: string
  if (raw.prefix === undefined || raw.prefix === '') {
    if (location === '') throw invalid('both location and prefix are unset')
    prefix = location
  } else {
    prefix = parseLocation(raw.prefix, invalid)
    const wildcard = prefix.startsWith('*.')
    if (wildcard && /[/@:]/.test(prefix)) {
      throw invalid(
        `wildcard prefix "${prefix}" must be of the form *.example.com (no port, path, tag or digest)`,
      )
    }
    if (!wildcard && location === '')
      throw invalid(`location is unset and prefix "${prefix}" is not *.domain`)
  }
  if (raw['pull-from-mirror'] !== undefined && raw['pull-from-mirror'] !== '') {
    throw invalid(`pull-from-mirror is only allowed on [[registry.mirror]] entries, not on "${prefix}"`)
  }
  const mirrorByDigestOnly = raw['mirror-by-digest-only'] ?? false

  const mirrors = (raw.mirror ?? []).map((m, j): Endpoint => {
    const mirrorLocation = parseLocation(m.location ?? '', invalid)
    if (mirrorLocation === '') throw invalid(`mirror[${j}]: location is unset`)
    const pull = m['pull-from-mirror'] || undefined
    if (pull !== undefined && mirrorByDigestOnly) {
      throw invalid(
        `mirror[${j}]: pull-from-mirror cannot be combined with mirror-by-digest-only on the registry "${prefix}"`,
      )
    }
    const endpoint: Endpoint = { location: mirrorLocation, insecure: m.insecure ?? false, mirror: true }
    if (pull !== undefined) endpoint.pullFromMirror = pull
    return endpoint
  })

  return {
    prefix,
    location,
    insecure: raw.insecure ?? false,
    blocked: raw.blocked ?? false,
    mirrorByDigestOnly,
    mirrors,
    source,
  }
}

/** c/image `parseLocation`: trailing `/` trimmed, URL schemes refused. */
function parseLocation(input: string, invalid: (why: string) => CofferError): string {
  const trimmed = input.replace(/\/+$/, '')
  if (/^https?:\/\//.test(trimmed)) throw invalid(`"${input}": URI schemes are not supported`)
  if (/\s/.test(trimmed) || trimmed.startsWith('/')) throw invalid(`"${input}" is not host[:port][/path]`)
  return trimmed
}

/** One physical registry must not be both secure and insecure, or both blocked and not. */
function checkConflicts(entries: RegistryEntry[], invalid: (why: string) => CofferError): void {
  const seen = new Map<string, RegistryEntry>()
  for (const e of entries) {
    const key = e.location === '' ? e.prefix : e.location
    const other = seen.get(key)
    if (!other) {
      seen.set(key, e)
      continue
    }
    if (other.insecure !== e.insecure)
      throw invalid(`registry "${key}" is defined twice with different "insecure"`)
    if (other.blocked !== e.blocked)
      throw invalid(`registry "${key}" is defined twice with different "blocked"`)
  }
}

/** containers-registries.conf.d(5): a drop-in's `[[registry]]` replaces the table with the same prefix. */
function mergeDropIn(base: RegistriesConf, dropIn: RegistriesConf): RegistriesConf {
  const byPrefix = new Map(base.registries.map((r) => [r.prefix, r]))
  for (const r of dropIn.registries) byPrefix.set(r.prefix, r)
  return { registries: sortByPrefix([...byPrefix.values()]), sources: [...base.sources, ...dropIn.sources] }
}

function sortByPrefix(entries: RegistryEntry[]): RegistryEntry[] {
  return entries.sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0))
}

// --- lookup -----------------------------------------------------------------------------------------

/**
 * The `[[registry]]` table for `hostAndRepo` (`host[:port]/path`): the longest matching prefix, a
 * literal prefix beating a wildcard of the same length. `undefined` when none matches.
 */
export function findRegistry(conf: RegistriesConf, hostAndRepo: string): RegistryEntry | undefined {
  checkHostAndRepo(hostAndRepo)
  let best: RegistryEntry | undefined
  for (const r of conf.registries) {
    if (matchLength(hostAndRepo, r.prefix) < 0) continue
    if (
      !best ||
      r.prefix.length > best.prefix.length ||
      (r.prefix.length === best.prefix.length && best.prefix.startsWith('*.') && !r.prefix.startsWith('*.'))
    ) {
      best = r
    }
  }
  return best
}

/**
 * Where to pull `hostAndRepo` from, in order: the usable mirrors, then the primary location, each with the
 * reference rewritten (the matched prefix replaced by that endpoint's location). Mirrors are skipped
 * for tag pulls under `mirror-by-digest-only` or `pull-from-mirror = "digest-only"`, and for digest
 * pulls under `pull-from-mirror = "tag-only"`. Throws ERR_REGISTRY_BLOCKED for a blocked registry.
 */
export function pullSources(conf: RegistriesConf, hostAndRepo: string, byDigest: boolean): RegistrySource[] {
  const reg = findRegistry(conf, hostAndRepo)
  if (!reg) return [direct(hostAndRepo, false)]
  assertNotBlocked(reg, hostAndRepo)

  const rest = hostAndRepo.slice(matchLength(hostAndRepo, reg.prefix))
  const mirrors = reg.mirrors.filter((m) => {
    if (reg.mirrorByDigestOnly) return byDigest
    if (m.pullFromMirror === 'digest-only') return byDigest
    if (m.pullFromMirror === 'tag-only') return !byDigest
    return true
  })
  const sources = mirrors.map((m) => ({ endpoint: { ...m }, repository: m.location + rest }))
  // A wildcard table without a location applies its settings but pulls the name as it is.
  sources.push(
    reg.location === ''
      ? direct(hostAndRepo, reg.insecure)
      : {
          endpoint: { location: reg.location, insecure: reg.insecure, mirror: false },
          repository: reg.location + rest,
        },
  )
  return sources
}

/**
 * Where to push `hostAndRepo`: the name as written, never a mirror and never the prefix rewrite
 * (containers-registries.conf(5): "Redirection and mirrors are … processed only when reading"; c/image's
 * image destination uses the reference unchanged). The matching table still supplies `insecure` and
 * `blocked` (ERR_REGISTRY_BLOCKED).
 */
export function pushDestination(conf: RegistriesConf, hostAndRepo: string): RegistrySource {
  const reg = findRegistry(conf, hostAndRepo)
  if (reg) assertNotBlocked(reg, hostAndRepo)
  return direct(hostAndRepo, reg?.insecure ?? false)
}

function direct(hostAndRepo: string, insecure: boolean): RegistrySource {
  return {
    endpoint: { location: hostAndRepo.slice(0, hostAndRepo.indexOf('/')), insecure, mirror: false },
    repository: hostAndRepo,
  }
}

function assertNotBlocked(reg: RegistryEntry, hostAndRepo: string): void {
  if (reg.blocked) {
    throw new CofferError(
      'ERR_REGISTRY_BLOCKED',
      `${hostAndRepo} is blocked by the registry "${reg.prefix}" in ${reg.source}`,
    )
  }
}

function checkHostAndRepo(hostAndRepo: string): void {
  const slash = hostAndRepo.indexOf('/')
  if (slash <= 0 || slash === hostAndRepo.length - 1 || /[\s@]/.test(hostAndRepo)) {
    throw new CofferError(
      'ERR_INVALID_ARGUMENT',
      `"${hostAndRepo}" is not of the form host[:port]/repository`,
    )
  }
}

/**
 * Length of `ref` that `prefix` covers, or -1 (c/image `refMatchingPrefix`). A literal prefix must end at
 * a path boundary; unlike c/image, `example.com` does not match `example.com:5000/…` (c/image calls that
 * unintended). A `*.domain` prefix matches any subdomain host, with any port, and covers the whole
 * `host[:port]`.
 */
function matchLength(ref: string, prefix: string): number {
  if (prefix.startsWith('*.')) {
    const slash = ref.indexOf('/')
    const hostPort = slash < 0 ? ref : ref.slice(0, slash)
    const host = hostPort.replace(/:[0-9]+$/, '')
    const suffix = prefix.slice(1) // ".example.com"
    return host.length > suffix.length && host.endsWith(suffix) ? hostPort.length : -1
  }
  if (ref === prefix) return prefix.length
  return ref.startsWith(prefix) && ref[prefix.length] === '/' ? prefix.length : -1
}

// --- files ------------------------------------------------------------------------------------------

/** The file's text, or `undefined` if it does not exist. */
async function readConfFile(path: string): Promise<string | undefined> {
  const bytes = await readOptionalFileLimited(
    path,
    MAX_REGISTRIES_CONF_BYTES,
    `registries configuration ${path}`,
    'ERR_REGISTRIES_CONF_INVALID',
  )
  return bytes?.toString('utf8')
}

/** `*.conf` files directly in `dir` (no recursion), in name order; none if `dir` does not exist. */
async function listDropIns(dir: string): Promise<string[]> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return []
    throw new CofferError('ERR_REGISTRIES_CONF_INVALID', `cannot list ${dir}: ${code ?? 'read error'}`, {
      cause: err,
    })
  }
  return entries
    .filter((e) => !e.isDirectory() && e.name.endsWith('.conf'))
    .map((e) => e.name)
    .sort()
    .map((name) => join(dir, name))
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v
}
