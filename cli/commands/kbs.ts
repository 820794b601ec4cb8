import { readFile, writeFile } from 'node:fs/promises'
import { parseAdminPrivateKey } from '../../lib/kbs/admin-auth.js'
import { KbsAdminClient } from '../../lib/kbs/admin-client.js'
import { parseResourceUri } from '../../lib/kbs/resource-uri.js'
import { CofferError } from '../../lib/util/errors.js'
import { readAllLimited } from '../../lib/util/io.js'
import { MiB } from '../../lib/util/limits.js'
import type { CommandContext } from '../run.js'
import { attestedKbsClient, DEFAULT_KBS_URL } from '../kbs-client-flags.js'

/** Resources and policies are small secrets; the KBS refuses bodies over 2 MiB by default. */
const MAX_INPUT_BYTES = 16 * MiB

/** `coffer kbs serve`: flags override the config file, which overrides the embedded defaults. */
export async function kbsServeCommand(opts: Record<string, unknown>, ctx: CommandContext): Promise<void> {
  const { loadKbsConfig } = await import('../../lib/kbs/config.js')
  const { startKbs } = await import('../../lib/kbs/serve.js')
  const { createVerifier, verifierNames, openKbsStore } = await import('../../plugins/index.js')
  const config = await loadKbsConfig(opts.config as string | undefined)
  if (typeof opts.address === 'string') config.http.address = opts.address
  if (typeof opts.port === 'string') {
    const port = Number(opts.port)
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new CofferError('ERR_USAGE', '--port must be 0..65535')
    config.http.port = port
  }
  if (typeof opts.dataDir === 'string') config.data_dir = opts.dataDir
  if (typeof opts.store === 'string') config.store = { type: opts.store, settings: {} }
  if (opts.allowSample === true) config.attestation.allow_sample = true
  if (Array.isArray(opts.adminKey)) config.admin.public_keys.push(...(opts.adminKey as string[]))
  if (typeof opts.policy === 'string') config.policy = { file: opts.policy }
  if (typeof opts.tokenKey === 'string') config.attestation.token_key = opts.tokenKey
  if (ctx.quiet) config.log.level = 'warn'
  const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  const kbs = await startKbs(
    config,
    { verifierNames, createVerifier, createStore: openKbsStore },
    `coffer ${pkg.version}`,
  )
  ctx.emit({ listening: kbs.url, dataDir: config.data_dir, store: config.store.type })
  process.stderr.write(`coffer kbs listening on ${kbs.url} (store: ${config.store.type})\n`)
  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve()
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true })
  })
  await kbs.close()
}

/** `coffer kbs get-resource kbs:///repo/type/tag`: attest, fetch, write the bytes to --out or stdout. */
export async function kbsGetResourceCommand(
  uri: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const resource = parseResourceUri(uri)
  // `kbs` commands name the KBS with --url and --tls-verify (it is the only server they talk to).
  const client = await attestedKbsClient(opts, {
    ...(typeof opts.url === 'string' ? { url: opts.url } : {}),
    tlsVerify: opts.tlsVerify !== false,
  })
  const attester = { tee: client.attesterTee }
  try {
    const value = await client.getResource(resource, { signal: ctx.signal })
    if (typeof opts.out === 'string') {
      // Resources are secrets: owner-only, and never replace a file by accident.
      await writeFile(opts.out, value, { mode: 0o600, flag: opts.force ? 'w' : 'wx' }).catch(
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'EEXIST')
            throw new CofferError('ERR_INVALID_ARGUMENT', `${opts.out} exists; pass --force to overwrite`)
          throw err
        },
      )
      ctx.emit({ resource: uri, bytes: value.length, out: opts.out, tee: attester.tee })
      ctx.say(`Wrote ${value.length} bytes of ${uri} to ${opts.out} (attested as ${attester.tee})`)
    } else if (ctx.json) {
      ctx.emit({
        resource: uri,
        bytes: value.length,
        tee: attester.tee,
        base64: Buffer.from(value).toString('base64'),
      })
    } else {
      process.stdout.write(value)
    }
  } finally {
    await client.close()
  }
}

export async function kbsPutResourceCommand(
  uri: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const resource = parseResourceUri(uri)
  const file = opts.file as string
  const value =
    file === '-'
      ? await readAllLimited(process.stdin, MAX_INPUT_BYTES, 'standard input')
      : await readInput(file)
  await withAdmin(opts, (admin) => admin.putResource(resource, value, { signal: ctx.signal }))
  ctx.emit({ resource: uri, bytes: value.length })
  ctx.say(`Stored ${value.length} bytes as ${uri}`)
}

export async function kbsDeleteResourceCommand(
  uri: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const resource = parseResourceUri(uri)
  await withAdmin(opts, (admin) => admin.deleteResource(resource, { signal: ctx.signal }))
  ctx.emit({ deleted: uri })
  ctx.say(`Deleted ${uri}`)
}

export async function kbsListResourcesCommand(
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const list = await withAdmin(opts, (admin) => admin.listResources({ signal: ctx.signal }))
  ctx.emit({ resources: list.map((p) => `kbs:///${p}`) })
  for (const p of list) ctx.say(`kbs:///${p}`)
}

export async function kbsSetPolicyCommand(
  file: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const text = (await readInput(file)).toString('utf8')
  // Check locally first: the same parser as the server, with the same messages.
  const { ResourcePolicy } = await import('../../lib/kbs/resource-policy.js')
  const policy = ResourcePolicy.parse(text)
  await withAdmin(opts, (admin) => admin.setPolicy(text, { signal: ctx.signal }))
  ctx.emit({ policy: file, rules: policy.document.rules.length })
  ctx.say(`Resource policy set (${policy.document.rules.length} rules)`)
}

export async function kbsGetPolicyCommand(opts: Record<string, unknown>, ctx: CommandContext): Promise<void> {
  const text = await withAdmin(opts, (admin) => admin.getPolicy({ signal: ctx.signal }))
  if (ctx.json) ctx.emit({ policy: JSON.parse(text) as unknown })
  else process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}

/** FILE is JSON `{"<name>": ["value", …], …}`, e.g. `{"tpm.pcr11": ["ab12…"]}`. */
export async function kbsSetReferenceValuesCommand(
  file: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  let values: unknown
  try {
    values = JSON.parse((await readInput(file)).toString('utf8'))
  } catch (err) {
    if (err instanceof CofferError) throw err
    throw new CofferError('ERR_INVALID_ARGUMENT', `${file} is not valid JSON`)
  }
  if (typeof values !== 'object' || values === null || Array.isArray(values))
    throw new CofferError('ERR_INVALID_ARGUMENT', `${file} must be a JSON object of name → list of values`)
  const normalized = Object.fromEntries(
    Object.entries(values).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]),
  ) as Record<string, (string | number | boolean)[]>
  await withAdmin(opts, (admin) => admin.setReferenceValues(normalized, { signal: ctx.signal }))
  ctx.emit({ referenceValues: Object.keys(normalized) })
  ctx.say(`Reference values set: ${Object.keys(normalized).join(', ')}`)
}

function kbsUrl(opts: Record<string, unknown>): string {
  return (opts.url as string | undefined) ?? process.env.COFFER_KBS_URL ?? DEFAULT_KBS_URL
}

async function withAdmin<T>(
  opts: Record<string, unknown>,
  f: (admin: KbsAdminClient) => Promise<T>,
): Promise<T> {
  const keyPath = (opts.adminKey as string | undefined) ?? process.env.COFFER_KBS_ADMIN_KEY
  if (!keyPath)
    throw new CofferError(
      'ERR_USAGE',
      'give --admin-key FILE (or set COFFER_KBS_ADMIN_KEY): the private key whose public half the KBS trusts',
    )
  const admin = new KbsAdminClient({
    url: kbsUrl(opts),
    adminKey: parseAdminPrivateKey(await readInput(keyPath), keyPath),
    tlsVerify: opts.tlsVerify !== false,
  })
  try {
    return await f(admin)
  } finally {
    await admin.close()
  }
}

async function readInput(path: string): Promise<Buffer> {
  try {
    const fh = await (await import('node:fs/promises')).open(path, 'r')
    try {
      return await readAllLimited(fh.createReadStream({ autoClose: false }), MAX_INPUT_BYTES, path)
    } finally {
      await fh.close()
    }
  } catch (err) {
    if (err instanceof CofferError) throw err
    throw new CofferError(
      (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_INVALID_ARGUMENT',
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    )
  }
}

/** `coffer kbs master-key --out FILE`: 32 random bytes, mode 0600, for the sealed store. */
export async function kbsMasterKeyCommand(opts: Record<string, unknown>, ctx: CommandContext): Promise<void> {
  const { generateMasterKeyFile } = await import('../../plugins/kbs-store/sealed/master-key.js')
  const out = opts.out as string
  await generateMasterKeyFile(out)
  ctx.emit({ masterKey: out })
  ctx.say(
    `Wrote ${out} (32 bytes, mode 0600): keep a copy apart from the store; without it nothing sealed can be read`,
  )
}

/** `coffer kbs apply-manifest FILE`: checked locally, then applied; prints generated secrets' public keys. */
export async function kbsApplyManifestCommand(
  file: string,
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const text = (await readInput(file)).toString('utf8')
  const { parseManifest, manifestPolicy } = await import('../../lib/kbs/manifest.js')
  manifestPolicy(parseManifest(text))
  const out = await withAdmin(opts, (admin) => admin.applyManifest(text, { signal: ctx.signal }))
  ctx.emit(out)
  ctx.say(
    `Manifest applied: ${out.workloads.length} workloads; generated ${out.generated.length ? out.generated.map((p) => `kbs:///${p}`).join(', ') : 'nothing new'}`,
  )
  for (const [path, pem] of Object.entries(out.publicKeys))
    ctx.say(`\nPublic key of kbs:///${path}:\n${pem.trimEnd()}`)
}

export async function kbsGetManifestCommand(
  opts: Record<string, unknown>,
  ctx: CommandContext,
): Promise<void> {
  const manifest = await withAdmin(opts, (admin) => admin.getManifest({ signal: ctx.signal }))
  if (ctx.json) ctx.emit({ manifest })
  else process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`)
}
