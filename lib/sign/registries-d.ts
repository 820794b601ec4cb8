/**
 * containers-registries.d (c/image `docker/registries_d.go`, `docs/containers-registries.d.5.md`):
 * where simple-signing signatures live (lookaside) and whether cosign `.sig` attachments are used.
 *
 * Every `*.yaml` file of the directory is merged; a scope defined twice (or two `default-docker`)
 * is an error. A key is looked up in the most specific scope **that sets it** (c/image falls through
 * scopes that leave it unset): full reference, repository, namespaces, host, then `default-docker`.
 */
import { readdir } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { CORE_SCHEMA, load } from 'js-yaml'
import { z } from 'zod'
import type { DockerReference } from '../oci/reference.js'
import { describeIssues } from '../oci/schemas.js'
import { CofferError } from '../util/errors.js'
import { readOptionalFileLimited } from '../util/io.js'
import { MAX_REGISTRIES_D_FILE_BYTES } from './limits.js'
import { dockerLookupKeys } from './policy-scope.js'

const namespaceSchema = z.looseObject({
  lookaside: z.string().optional(),
  'lookaside-staging': z.string().optional(),
  sigstore: z.string().optional(),
  'sigstore-staging': z.string().optional(),
  'use-sigstore-attachments': z.boolean().optional(),
})
type Namespace = z.infer<typeof namespaceSchema>

const fileSchema = z.looseObject({
  'default-docker': namespaceSchema.nullish(),
  docker: z.record(z.string(), namespaceSchema.nullable()).nullish(),
})

export interface RegistriesD {
  readonly defaultDocker?: Namespace
  readonly docker: ReadonlyMap<string, Namespace>
}

/** `--registries.d DIR`, else `~/.config/containers/registries.d` if it exists, else `/etc/containers/registries.d`. */
export async function loadRegistriesD(dir?: string, o: { homeDir?: string } = {}): Promise<RegistriesD> {
  if (dir !== undefined) return readRegistriesDir(dir)
  const user = join(o.homeDir ?? homedir(), '.config/containers/registries.d')
  const files = await listYaml(user)
  return files ? readRegistriesDir(user, files) : readRegistriesDir('/etc/containers/registries.d')
}

async function listYaml(dir: string): Promise<string[] | undefined> {
  try {
    return (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    throw new CofferError('ERR_SIGN_REGISTRIES_D_INVALID', `cannot read ${dir}: ${code ?? 'error'}`)
  }
}

async function readRegistriesDir(dir: string, known?: string[]): Promise<RegistriesD> {
  const files = known ?? (await listYaml(dir)) ?? []
  const merged = new RegistriesDMerge()
  for (const file of files) {
    const path = join(dir, file)
    const bytes = await readOptionalFileLimited(
      path,
      MAX_REGISTRIES_D_FILE_BYTES,
      path,
      'ERR_SIGN_REGISTRIES_D_INVALID',
    )
    if (!bytes) continue
    merged.add(parseRegistriesDFile(bytes.toString('utf8'), path), path)
  }
  return merged.result()
}

/**
 * One registries.d document on its own (a `kbs:///…` resource, or a single file given in place of
 * the directory), validated and merged exactly as a directory's files are.
 */
export function registriesDFromDocument(text: string, source: string): RegistriesD {
  const merged = new RegistriesDMerge()
  merged.add(parseRegistriesDFile(text, source), source)
  return merged.result()
}

/** The files of one registries.d, merged: a scope (or `default-docker`) defined twice is an error. */
class RegistriesDMerge {
  private defaultDocker: Namespace | undefined
  private readonly docker = new Map<string, Namespace>()

  add(parsed: z.infer<typeof fileSchema>, source: string): void {
    if (parsed['default-docker']) {
      if (this.defaultDocker)
        throw new CofferError('ERR_SIGN_REGISTRIES_D_INVALID', `${source}: default-docker is defined twice`)
      this.defaultDocker = parsed['default-docker']
    }
    for (const [scope, ns] of Object.entries(parsed.docker ?? {})) {
      if (this.docker.has(scope))
        throw new CofferError(
          'ERR_SIGN_REGISTRIES_D_INVALID',
          `${source}: docker scope "${scope}" is defined twice`,
        )
      this.docker.set(scope, ns ?? {})
    }
  }

  result(): RegistriesD {
    return { ...(this.defaultDocker ? { defaultDocker: this.defaultDocker } : {}), docker: this.docker }
  }
}

/** Parses one registries.d YAML document (core schema: no custom tags). */
export function parseRegistriesDFile(text: string, source: string): z.infer<typeof fileSchema> {
  let doc: unknown
  try {
    doc = load(text, { schema: CORE_SCHEMA, filename: source })
  } catch {
    throw new CofferError('ERR_SIGN_REGISTRIES_D_INVALID', `${source} is not valid YAML`)
  }
  if (doc === undefined || doc === null) return {}
  const parsed = fileSchema.safeParse(doc)
  if (!parsed.success)
    throw new CofferError('ERR_SIGN_REGISTRIES_D_INVALID', `${source}: ${describeIssues(parsed.error)}`)
  return parsed.data
}

/** The namespaces configured for `ref`, most specific first, `default-docker` last. */
function scopesFor(config: RegistriesD, ref: DockerReference): Namespace[] {
  const keys = dockerLookupKeys(ref)
  const out: Namespace[] = []
  for (const key of [keys.identity, ...keys.namespaces]) {
    const ns = config.docker.get(key)
    if (ns) out.push(ns)
  }
  if (config.defaultDocker) out.push(config.defaultDocker)
  return out
}

/**
 * The lookaside base URL for reading (`lookaside`, `sigstore`) or writing (`lookaside-staging`,
 * `sigstore-staging`, then the read keys), or c/image's built-in default: `/var/lib/containers/sigstore`
 * for root, `~/.local/share/containers/sigstore` otherwise.
 */
export function lookasideBase(
  config: RegistriesD,
  ref: DockerReference,
  write: boolean,
  o: { homeDir?: string; root?: boolean } = {},
): URL {
  for (const ns of scopesFor(config, ref)) {
    const value =
      (write ? (ns['lookaside-staging'] ?? ns['sigstore-staging']) : undefined) ?? ns.lookaside ?? ns.sigstore
    if (value) {
      try {
        return new URL(value)
      } catch {
        throw new CofferError('ERR_SIGN_REGISTRIES_D_INVALID', `lookaside "${value}" is not a URL`)
      }
    }
  }
  const root = o.root ?? process.geteuid?.() === 0
  const dir = root
    ? '/var/lib/containers/sigstore'
    : join(o.homeDir ?? homedir(), '.local/share/containers/sigstore')
  return new URL(`file://${dir}`)
}

/** `use-sigstore-attachments` from the most specific scope that sets it; false if none does. */
export function usesSigstoreAttachments(config: RegistriesD, ref: DockerReference): boolean {
  for (const ns of scopesFor(config, ref)) {
    if (ns['use-sigstore-attachments'] !== undefined) return ns['use-sigstore-attachments']
  }
  return false
}
