import { execFile } from 'node:child_process'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { CofferError } from '../../util/errors.js'
import { readOptionalFileLimited, throwIfAborted, type Io } from '../../util/io.js'
import { MAX_CREDENTIALS_FILE_BYTES } from '../../util/limits.js'

/**
 * Registry credentials as containers/image `pkg/docker/config` finds them: `--creds`, then the auth files
 * (containers-auth.json(5) and Docker's config.json), each of which may delegate a host to a
 * `docker-credential-<suffix>` helper. Nothing here logs, and no error message, cause or argv ever carries
 * a secret: file contents and helper output stay out of every error.
 */
export type Credentials = { username: string; password: string } | { identityToken: string }

/** Where to look. Every field defaults to the process's own environment. */
export interface CredentialOptions extends Io {
  /** `--authfile`: when set (or `REGISTRY_AUTH_FILE` is), only this file is read. */
  authfile?: string
  /**
   * An auth.json held in memory (one fetched from a KBS, which must never touch the disk). When
   * set, it is the only auth file consulted (it wins over `authfile`); `source` names it in messages.
   */
  authFileContent?: AuthFileContent
  /** `--creds` as skopeo takes it, `user:password`; wins over every file. */
  creds?: string
  /** Environment for path variables and for the credential helper's PATH; default `process.env`. */
  env?: NodeJS.ProcessEnv
  /** Default: `$HOME`, else `os.homedir()`. */
  homeDir?: string
  /** Used for `/run/containers/<uid>/auth.json`; default `process.getuid()`. */
  uid?: number
  /** Kill a credential helper after this long; default {@link CREDENTIAL_HELPER_TIMEOUT_MS}. */
  helperTimeoutMs?: number
}

/** An auth.json's bytes and where they came from (`kbs:///…`), for messages. */
export interface AuthFileContent {
  source: string
  bytes: Uint8Array
}

/**
 * A helper may prompt (pass/gpg pinentry, a desktop keyring unlock), so this is generous; it only exists so a
 * wedged helper cannot hang a pull forever.
 */
export const CREDENTIAL_HELPER_TIMEOUT_MS = 60_000

/** What docker-credential-helpers prints (on stdout, exit ≠ 0) when it has nothing for the host. */
const HELPER_NOT_FOUND_MESSAGE = 'credentials not found in native keychain'

/** Docker Hub's auth keys (spec §4.3); c/image `normalizeRegistry` folds them all into this one. */
const DOCKER_HUB_AUTH_KEY = 'index.docker.io'

/**
 * Parses `--creds user:password`. The password is everything after the first `:` and may be empty
 * (skopeo allows `user:`). Unlike skopeo, a bare `user` is rejected: coffer never prompts.
 */
export function parseCredsFlag(value: string): Credentials {
  // Messages never quote `value`: it holds the password.
  if (value === '') throw new CofferError('ERR_INVALID_ARGUMENT', '--creds must not be empty')
  const colon = value.indexOf(':')
  if (colon < 0) {
    throw new CofferError('ERR_INVALID_ARGUMENT', '--creds must be "user:password" (coffer does not prompt)')
  }
  if (colon === 0) throw new CofferError('ERR_INVALID_ARGUMENT', '--creds has an empty user name')
  return { username: value.slice(0, colon), password: value.slice(colon + 1) }
}

interface AuthPath {
  path: string
  /** `~/.dockercfg`: the top level is the auths map itself, and keys are hosts only. */
  legacy: boolean
  /** The content, when it is held in memory rather than read from `path`. */
  bytes?: Uint8Array
}

/**
 * The auth files to read, in order (spec §4.3, c/image `getAuthFilePaths`). An explicit `authfile` or
 * `REGISTRY_AUTH_FILE` replaces the whole list. Paths are returned whether or not they exist.
 */
export function authFileCandidates(o: CredentialOptions = {}): string[] {
  return authPaths(o).map((p) => p.path)
}

function authPaths(o: CredentialOptions): AuthPath[] {
  if (o.authFileContent)
    return [{ path: o.authFileContent.source, legacy: false, bytes: o.authFileContent.bytes }]
  const env = o.env ?? process.env
  const explicit = o.authfile ?? nonEmpty(env.REGISTRY_AUTH_FILE)
  if (explicit !== undefined) return [{ path: explicit, legacy: false }]

  const home = o.homeDir ?? nonEmpty(env.HOME) ?? homedir()
  const uid = o.uid ?? process.getuid?.() ?? 0
  const runtimeDir = nonEmpty(env.XDG_RUNTIME_DIR)
  const configHome = nonEmpty(env.XDG_CONFIG_HOME) ?? join(home, '.config')
  const dockerConfig = nonEmpty(env.DOCKER_CONFIG)
  return [
    // c/image only warns when XDG_RUNTIME_DIR names a missing directory; a missing file is skipped anyway.
    {
      path: runtimeDir ? join(runtimeDir, 'containers/auth.json') : `/run/containers/${uid}/auth.json`,
      legacy: false,
    },
    { path: join(configHome, 'containers/auth.json'), legacy: false },
    {
      path: dockerConfig ? join(dockerConfig, 'config.json') : join(home, '.docker/config.json'),
      legacy: false,
    },
    { path: join(home, '.dockercfg'), legacy: true },
  ]
}

/**
 * Finds credentials for `host/repo`: `creds` if given, else the first auth file with a match
 * (see {@link authFileCandidates}). Inside a file: `credHelpers[host]`, then `auths` keys from the most
 * specific (`host/a/b`) to `host`, then keys that normalize to the host (URL forms, Docker Hub aliases).
 * `undefined` means anonymous access. Throws ERR_AUTH_FILE_INVALID for a malformed file and
 * ERR_AUTH_HELPER_FAILED when a helper cannot be run or answers nonsense.
 *
 * @param host `host[:port]`, already normalized (`docker.io` for Docker Hub).
 * @param repo repository path inside the registry, e.g. `library/alpine`.
 */
export async function resolveCredentials(
  host: string,
  repo: string,
  o: CredentialOptions = {},
): Promise<Credentials | undefined> {
  if (o.creds !== undefined) return parseCredsFlag(o.creds)
  if (host === '' || /[/@]|^https?:/.test(host)) {
    throw new CofferError('ERR_INVALID_ARGUMENT', `registry host "${host}" is not of the form host[:port]`)
  }
  for (const authPath of authPaths(o)) {
    throwIfAborted(o.signal)
    const file = await readAuthFile(authPath)
    if (!file) continue
    const found = await findInFile(file, host, repo, authPath, o)
    if (found) return found
  }
  return undefined
}

// --- auth file format -------------------------------------------------------------------------------

// Loose objects: Docker's config.json carries many unrelated keys (credsStore, proxies, HttpHeaders).
const AuthEntrySchema = z.looseObject({
  auth: z.string().nullish(),
  identitytoken: z.string().nullish(),
})
type AuthEntry = z.infer<typeof AuthEntrySchema>
const AuthsSchema = z.record(z.string(), AuthEntrySchema)
const AuthFileSchema = z.looseObject({
  auths: AuthsSchema.nullish(),
  credHelpers: z.record(z.string(), z.string()).nullish(),
})

interface ParsedAuthFile {
  auths: Record<string, AuthEntry>
  credHelpers: Record<string, string>
}

/** Reads and validates one auth file; a missing one is `undefined` (c/image treats it as empty). */
async function readAuthFile({ path, legacy, bytes }: AuthPath): Promise<ParsedAuthFile | undefined> {
  if (bytes && bytes.length > MAX_CREDENTIALS_FILE_BYTES)
    throw new CofferError('ERR_AUTH_FILE_INVALID', `auth file ${path} is larger than the size limit`)
  const raw = bytes
    ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    : await readOptionalFileLimited(
        path,
        MAX_CREDENTIALS_FILE_BYTES,
        `auth file ${path}`,
        'ERR_AUTH_FILE_INVALID',
      )
  if (!raw) return undefined

  let json: unknown
  try {
    json = JSON.parse(raw.toString('utf8'))
  } catch {
    // No cause and no parser message: V8's SyntaxError quotes the offending text, which may be a secret.
    throw new CofferError('ERR_AUTH_FILE_INVALID', `auth file ${path} is not valid JSON`)
  }
  const schema = legacy ? AuthsSchema : AuthFileSchema
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    // Issue paths name hosts and field names only; zod 4 messages state types, not values.
    const issue = parsed.error.issues[0]
    const where = issue?.path.length ? ` at ${issue.path.map(String).join('.')}` : ''
    throw new CofferError(
      'ERR_AUTH_FILE_INVALID',
      `auth file ${path} is malformed${where}: ${issue?.message}`,
    )
  }
  if (legacy) return { auths: parsed.data as Record<string, AuthEntry>, credHelpers: {} }
  const data = parsed.data as z.infer<typeof AuthFileSchema>
  return { auths: data.auths ?? {}, credHelpers: data.credHelpers ?? {} }
}

/**
 * One file's answer, c/image `findCredentialsInFile`. The first key that matches decides for the whole
 * file: a helper that knows nothing, or an entry without credentials (Docker's `{}` marker for its
 * credsStore), sends the search on to the next file rather than to a less specific key.
 */
async function findInFile(
  file: ParsedAuthFile,
  host: string,
  repo: string,
  authPath: AuthPath,
  o: CredentialOptions,
): Promise<Credentials | undefined> {
  // Helpers are keyed by host only; c/image never asks them about a namespace.
  const helper = Object.hasOwn(file.credHelpers, host) ? file.credHelpers[host] : undefined
  if (helper !== undefined) return runCredentialHelper(helper, host, authPath.path, o)

  for (const key of lookupKeys(host, repo, authPath.legacy)) {
    if (Object.hasOwn(file.auths, key)) return decodeEntry(file.auths[key]!, key, authPath.path)
  }

  // Older `docker login` stored URLs (`https://index.docker.io/v1/`) and .dockercfg always did.
  const wanted = normalizeRegistry(host)
  for (const [key, entry] of Object.entries(file.auths)) {
    if (normalizeAuthKey(key, authPath.legacy) === wanted) return decodeEntry(entry, key, authPath.path)
  }
  return undefined
}

/** `host/a/b/c`, `host/a/b`, `host/a`, `host`; legacy files know hosts only. */
function lookupKeys(host: string, repo: string, legacy: boolean): string[] {
  if (legacy) return [host]
  const keys: string[] = []
  let key = repo === '' ? host : `${host}/${repo}`
  for (;;) {
    keys.push(key)
    const slash = key.lastIndexOf('/')
    if (slash < 0) return keys
    key = key.slice(0, slash)
  }
}

/**
 * c/image `normalizeAuthFileKey`: the path is stripped only from URL-form keys (and legacy ones), so a
 * plain `host/ns` key never stands in for a different namespace on the same host.
 */
function normalizeAuthKey(key: string, legacy: boolean): string {
  let stripped = key.replace(/^https?:\/\//, '')
  if (legacy || stripped !== key) stripped = stripped.split('/', 1)[0]!
  return normalizeRegistry(stripped)
}

function normalizeRegistry(host: string): string {
  return host === 'docker.io' || host === 'registry-1.docker.io' ? DOCKER_HUB_AUTH_KEY : host
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

function decodeEntry(entry: AuthEntry, key: string, path: string): Credentials | undefined {
  // An identity token wins: the token endpoint wants it as a refresh token instead of Basic credentials.
  if (entry.identitytoken) return { identityToken: entry.identitytoken }
  if (!entry.auth) return undefined // credential-helper marker

  // Go's base64.StdEncoding skips CR/LF but rejects anything else; Buffer.from would silently drop junk.
  const b64 = entry.auth.replace(/[\r\n]/g, '')
  if (!BASE64.test(b64)) {
    throw new CofferError(
      'ERR_AUTH_FILE_INVALID',
      `auth file ${path}: "auth" of entry "${key}" is not base64`,
    )
  }
  const decoded = Buffer.from(b64, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  // c/image skips (with a warning) an entry without a colon, as Docker does.
  if (colon < 0) return undefined
  // c/image `strings.Trim(…, "\x00")`: NUL padding some tools append is dropped.
  const password = decoded.slice(colon + 1).replace(/^\0+|\0+$/g, '')
  return { username: decoded.slice(0, colon), password }
}

// --- credential helpers -----------------------------------------------------------------------------

/** The docker-credential-helpers `get` reply. */
const HelperReplySchema = z.looseObject({
  ServerURL: z.string().optional(),
  Username: z.string(),
  Secret: z.string(),
})

const HELPER_SUFFIX = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/**
 * Runs `docker-credential-<suffix> get` with the host on stdin (never on argv, where other users can read
 * it). The binary is looked up on `o.env.PATH`. "Not found" from the helper is `undefined`.
 */
async function runCredentialHelper(
  suffix: string,
  host: string,
  file: string,
  o: CredentialOptions,
): Promise<Credentials | undefined> {
  // The suffix becomes a command name: a `/` in it would turn the PATH lookup into a path.
  if (!HELPER_SUFFIX.test(suffix)) {
    throw new CofferError(
      'ERR_AUTH_FILE_INVALID',
      `auth file ${file}: credHelpers entry for "${host}" is invalid`,
    )
  }
  const bin = `docker-credential-${suffix}`
  const timeout = o.helperTimeoutMs ?? CREDENTIAL_HELPER_TIMEOUT_MS
  const fail = (why: string): CofferError =>
    new CofferError('ERR_AUTH_HELPER_FAILED', `credential helper ${bin} (from ${file}) for ${host}: ${why}`)

  const { error, stdout } = await new Promise<{ error: (Error & ExecErrorFields) | null; stdout: string }>(
    (resolve) => {
      const child = execFile(
        bin,
        ['get'],
        {
          env: o.env ?? process.env,
          timeout,
          maxBuffer: MAX_CREDENTIALS_FILE_BYTES,
          encoding: 'utf8',
          signal: o.signal,
          windowsHide: true,
        },
        (err, out) => resolve({ error: err as (Error & ExecErrorFields) | null, stdout: out }),
      )
      // A helper that exits without reading stdin makes the write fail with EPIPE; the exit status tells more.
      child.stdin?.on('error', () => {})
      child.stdin?.end(host)
    },
  )

  if (error) {
    // Only fixed facts go into the message: stdout/stderr may echo the secret.
    throwIfAborted(o.signal)
    if (stdout.trim() === HELPER_NOT_FOUND_MESSAGE) return undefined
    if (error.code === 'ENOENT') throw fail('not found on PATH')
    if (error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') throw fail('reply too large')
    if (error.killed && error.signal) throw fail(`timed out after ${timeout} ms`)
    if (typeof error.code === 'number') throw fail(`exited with status ${error.code}`)
    if (error.signal) throw fail(`killed by ${error.signal}`)
    throw fail(typeof error.code === 'string' ? error.code : 'could not be run')
  }

  let reply: z.infer<typeof HelperReplySchema>
  try {
    reply = HelperReplySchema.parse(JSON.parse(stdout))
  } catch {
    throw fail('the reply is not {"Username","Secret"} JSON')
  }
  if (reply.Username === '' && reply.Secret === '') return undefined
  // docker-credential-helpers convention: this user name marks an OAuth2 refresh token (spec §4.2, §4.3).
  if (reply.Username === '<token>') return { identityToken: reply.Secret }
  return { username: reply.Username, password: reply.Secret }
}

/** What Node puts on an execFile error besides `message`. */
interface ExecErrorFields {
  code?: number | string | null
  killed?: boolean
  signal?: NodeJS.Signals | null
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v
}
