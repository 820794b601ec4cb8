import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  authFileCandidates,
  parseCredsFlag,
  resolveCredentials,
  type CredentialOptions,
} from '../../../../lib/oci/registry/credentials.js'
import { isCofferError } from '../../../../lib/util/errors.js'

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')

let root: string
let home: string
let bin: string
let runtimeDir: string
let env: NodeJS.ProcessEnv

/** Options that keep every lookup inside the temp dir: never the real home or /run. */
const opts = (extra: Partial<CredentialOptions> = {}): CredentialOptions => ({
  env,
  homeDir: home,
  uid: 4242,
  ...extra,
})

const paths = () => ({
  runtime: join(runtimeDir, 'containers/auth.json'),
  xdgConfig: join(home, '.config/containers/auth.json'),
  docker: join(home, '.docker/config.json'),
  legacy: join(home, '.dockercfg'),
})

async function writeJson(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, typeof value === 'string' ? value : JSON.stringify(value))
}

async function writeHelper(suffix: string, script: string): Promise<void> {
  const path = join(bin, `docker-credential-${suffix}`)
  await writeFile(path, `#!/bin/sh\n${script}\n`)
  await chmod(path, 0o755)
}

/** Asserts a rejection's code and that its message never contains `secret`. */
async function expectCode(p: Promise<unknown>, code: string, secret?: string): Promise<Error> {
  const err = await p.then(
    () => expect.fail('expected a rejection'),
    (e: unknown) => e,
  )
  expect(isCofferError(err)).toBe(true)
  expect((err as { code: string }).code).toBe(code)
  if (secret !== undefined) {
    expect((err as Error).message).not.toContain(secret)
    expect(String((err as Error).cause ?? '')).not.toContain(secret)
  }
  return err as Error
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'coffer-creds-'))
  home = join(root, 'home')
  bin = join(root, 'bin')
  runtimeDir = join(root, 'run')
  await mkdir(home, { recursive: true })
  await mkdir(bin, { recursive: true })
  await mkdir(runtimeDir, { recursive: true })
  env = { HOME: home, XDG_RUNTIME_DIR: runtimeDir, PATH: `${bin}:/usr/bin:/bin` }
})

afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

describe('authFileCandidates', () => {
  it('lists runtime, XDG config, docker config and legacy .dockercfg, in that order', () => {
    const p = paths()
    expect(authFileCandidates(opts())).toEqual([p.runtime, p.xdgConfig, p.docker, p.legacy])
  })

  it('falls back to /run/containers/<uid>/auth.json without XDG_RUNTIME_DIR', () => {
    delete env.XDG_RUNTIME_DIR
    expect(authFileCandidates(opts())[0]).toBe('/run/containers/4242/auth.json')
  })

  it('honours XDG_CONFIG_HOME and DOCKER_CONFIG', () => {
    env.XDG_CONFIG_HOME = join(root, 'xdg')
    env.DOCKER_CONFIG = join(root, 'dockercfg')
    expect(authFileCandidates(opts())).toEqual([
      paths().runtime,
      join(root, 'xdg/containers/auth.json'),
      join(root, 'dockercfg/config.json'),
      paths().legacy,
    ])
  })

  it('an explicit authfile or REGISTRY_AUTH_FILE replaces the whole list, authfile first', () => {
    env.REGISTRY_AUTH_FILE = '/from/env.json'
    expect(authFileCandidates(opts())).toEqual(['/from/env.json'])
    expect(authFileCandidates(opts({ authfile: '/explicit.json' }))).toEqual(['/explicit.json'])
  })
})

describe('parseCredsFlag', () => {
  it('splits at the first colon', () => {
    expect(parseCredsFlag('alice:pa:ss')).toEqual({ username: 'alice', password: 'pa:ss' })
    expect(parseCredsFlag('alice:')).toEqual({ username: 'alice', password: '' })
  })

  it('rejects an empty value, a bare user and an empty user without echoing the value', () => {
    for (const bad of ['', 'alice', ':hunter2']) {
      let err: unknown
      try {
        parseCredsFlag(bad)
      } catch (e) {
        err = e
      }
      expect(isCofferError(err, 'ERR_INVALID_ARGUMENT')).toBe(true)
      if (bad !== '') expect((err as Error).message).not.toContain(bad)
    }
  })
})

describe('resolveCredentials: files', () => {
  it('returns undefined when no file exists', async () => {
    expect(await resolveCredentials('quay.io', 'ns/repo', opts())).toBeUndefined()
  })

  it('--creds wins over every file', async () => {
    await writeJson(paths().runtime, { auths: { 'quay.io': { auth: b64('file:pw') } } })
    expect(await resolveCredentials('quay.io', 'ns/repo', opts({ creds: 'flag:pw2' }))).toEqual({
      username: 'flag',
      password: 'pw2',
    })
  })

  it('takes the first file with a match, in candidate order', async () => {
    const p = paths()
    await writeJson(p.runtime, { auths: { 'other.io': { auth: b64('runtime:1') } } })
    await writeJson(p.xdgConfig, { auths: { 'quay.io': { auth: b64('xdg:2') } } })
    await writeJson(p.docker, { auths: { 'quay.io': { auth: b64('docker:3') } } })
    expect(await resolveCredentials('quay.io', 'a/b', opts())).toEqual({ username: 'xdg', password: '2' })
    expect(await resolveCredentials('other.io', 'a/b', opts())).toEqual({
      username: 'runtime',
      password: '1',
    })
  })

  it('reaches docker config.json and then the legacy ~/.dockercfg', async () => {
    const p = paths()
    await writeJson(p.docker, { auths: { 'ghcr.io': { auth: b64('docker:3') } } })
    await writeJson(p.legacy, { 'https://legacy.io/v1/': { auth: b64('old:4'), email: 'x@y' } })
    expect(await resolveCredentials('ghcr.io', 'x', opts())).toEqual({ username: 'docker', password: '3' })
    expect(await resolveCredentials('legacy.io', 'x', opts())).toEqual({ username: 'old', password: '4' })
  })

  it('reads only the explicit authfile when one is given', async () => {
    await writeJson(paths().runtime, { auths: { 'quay.io': { auth: b64('default:1') } } })
    const explicit = join(root, 'explicit.json')
    expect(await resolveCredentials('quay.io', 'a', opts({ authfile: explicit }))).toBeUndefined()
    await writeJson(explicit, { auths: { 'quay.io': { auth: b64('explicit:2') } } })
    expect(await resolveCredentials('quay.io', 'a', opts({ authfile: explicit }))).toEqual({
      username: 'explicit',
      password: '2',
    })
    env.REGISTRY_AUTH_FILE = explicit
    expect(await resolveCredentials('quay.io', 'a', opts())).toEqual({ username: 'explicit', password: '2' })
  })

  it('an in-memory auth file (a KBS resource) is the only one read, winning over authfile, and never echoed', async () => {
    await writeJson(paths().runtime, { auths: { 'quay.io': { auth: b64('default:1') } } })
    const explicit = join(root, 'explicit.json')
    await writeJson(explicit, { auths: { 'quay.io': { auth: b64('explicit:2') } } })
    const content = (value: unknown) => ({
      source: 'kbs:///apps/auth/guest',
      bytes: Buffer.from(JSON.stringify(value)),
    })
    const inMemory = content({ auths: { 'quay.io/team': { auth: b64('kbs:s3cret') } } })
    expect(
      await resolveCredentials(
        'quay.io',
        'team/app',
        opts({ authfile: explicit, authFileContent: inMemory }),
      ),
    ).toEqual({ username: 'kbs', password: 's3cret' })
    // No match in memory: no fallback to the files.
    expect(
      await resolveCredentials(
        'quay.io',
        'other/app',
        opts({ authfile: explicit, authFileContent: inMemory }),
      ),
    ).toBeUndefined()
    const bad = { source: 'kbs:///apps/auth/guest', bytes: Buffer.from('{"auths": s3cret') }
    const err = await expectCode(
      resolveCredentials('quay.io', 'a', opts({ authFileContent: bad })),
      'ERR_AUTH_FILE_INVALID',
      's3cret',
    )
    expect(err.message).toContain('kbs:///apps/auth/guest')
  })

  it('matches the most specific key first', async () => {
    await writeJson(paths().runtime, {
      auths: {
        'quay.io': { auth: b64('host:1') },
        'quay.io/ns': { auth: b64('ns:2') },
        'quay.io/ns/repo': { auth: b64('repo:3') },
        'quay.io/n': { auth: b64('partial:4') },
      },
    })
    const user = async (repo: string) =>
      ((await resolveCredentials('quay.io', repo, opts())) as { username: string }).username
    expect(await user('ns/repo')).toBe('repo')
    expect(await user('ns/repo/sub')).toBe('repo')
    expect(await user('ns/other')).toBe('ns')
    expect(await user('nsx/repo')).toBe('host')
    expect(await user('n/repo')).toBe('partial')
  })

  it('falls back to normalized keys: URL forms and the Docker Hub aliases', async () => {
    await writeJson(paths().docker, {
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hub:1') },
        'https://quay.io/v2/': { auth: b64('url:2') },
      },
    })
    expect(await resolveCredentials('docker.io', 'library/alpine', opts())).toEqual({
      username: 'hub',
      password: '1',
    })
    expect(await resolveCredentials('quay.io', 'a/b', opts())).toEqual({ username: 'url', password: '2' })
  })

  it.each(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/'])(
    'finds Docker Hub credentials stored under %s',
    async (key) => {
      await writeJson(paths().docker, { auths: { [key]: { auth: b64('hub:pw') } } })
      expect(await resolveCredentials('docker.io', 'library/alpine', opts())).toEqual({
        username: 'hub',
        password: 'pw',
      })
    },
  )

  it('does not strip the path of a plain namespaced key (another namespace is not this one)', async () => {
    await writeJson(paths().runtime, { auths: { 'quay.io/other': { auth: b64('other:1') } } })
    expect(await resolveCredentials('quay.io', 'ns/repo', opts())).toBeUndefined()
  })

  it('keeps the password after the first colon and trims NUL padding', async () => {
    await writeJson(paths().runtime, { auths: { 'quay.io': { auth: b64('me:pa:ss\0\0') } } })
    expect(await resolveCredentials('quay.io', 'a', opts())).toEqual({ username: 'me', password: 'pa:ss' })
  })

  it('returns an identity token', async () => {
    await writeJson(paths().runtime, {
      auths: { 'acr.io': { auth: b64('00000000-0000:'), identitytoken: 'tok' } },
    })
    expect(await resolveCredentials('acr.io', 'a', opts())).toEqual({ identityToken: 'tok' })
  })

  it('skips a {} credential-helper marker and moves on to the next file', async () => {
    await writeJson(paths().runtime, { auths: { 'quay.io': {} } })
    await writeJson(paths().docker, { auths: { 'quay.io': { auth: b64('later:1') } } })
    expect(await resolveCredentials('quay.io', 'a', opts())).toEqual({ username: 'later', password: '1' })
  })

  it('rejects malformed JSON naming the file but not its content', async () => {
    await writeJson(paths().xdgConfig, '{"auths":{"quay.io":{"auth":"SECRETSECRET"}}')
    const err = await expectCode(
      resolveCredentials('quay.io', 'a', opts()),
      'ERR_AUTH_FILE_INVALID',
      'SECRETSECRET',
    )
    expect(err.message).toContain(paths().xdgConfig)
  })

  it('rejects a bad base64 auth without echoing it', async () => {
    await writeJson(paths().runtime, { auths: { 'quay.io': { auth: 'not*base64!hunter2' } } })
    const err = await expectCode(
      resolveCredentials('quay.io', 'a', opts()),
      'ERR_AUTH_FILE_INVALID',
      'hunter2',
    )
    expect(err.message).toContain(paths().runtime)
  })

  it('rejects a structurally wrong file', async () => {
    await writeJson(paths().runtime, { auths: { 'quay.io': { auth: 42 } } })
    await expectCode(resolveCredentials('quay.io', 'a', opts()), 'ERR_AUTH_FILE_INVALID')
  })

  it('refuses files over the size limit', async () => {
    await writeJson(paths().runtime, ' '.repeat(1024 * 1024 + 1))
    await expectCode(resolveCredentials('quay.io', 'a', opts()), 'ERR_TOO_LARGE')
  })
})

describe('resolveCredentials: credential helpers', () => {
  const host = 'registry.example.com'
  const helperFile = () => paths().runtime

  it('runs docker-credential-<suffix> get from env PATH, host on stdin', async () => {
    await writeHelper(
      'test',
      `[ "$1" = get ] || exit 9
read -r h
printf '{"ServerURL":"%s","Username":"user-for-%s","Secret":"s3cret"}' "$h" "$h"`,
    )
    await writeJson(helperFile(), {
      credHelpers: { [host]: 'test' },
      auths: { [host]: { auth: b64('file:1') } },
    })
    expect(await resolveCredentials(host, 'ns/repo', opts())).toEqual({
      username: `user-for-${host}`,
      password: 's3cret',
    })
  })

  it('maps the <token> user name to an identity token', async () => {
    await writeHelper(
      'test',
      `cat >/dev/null; echo '{"ServerURL":"x","Username":"<token>","Secret":"refresh"}'`,
    )
    await writeJson(helperFile(), { credHelpers: { [host]: 'test' } })
    expect(await resolveCredentials(host, 'a', opts())).toEqual({ identityToken: 'refresh' })
  })

  it('moves on to the next file when the helper has nothing', async () => {
    await writeHelper('test', `cat >/dev/null; echo 'credentials not found in native keychain'; exit 1`)
    await writeJson(helperFile(), { credHelpers: { [host]: 'test' } })
    await writeJson(paths().docker, { auths: { [host]: { auth: b64('fallback:1') } } })
    expect(await resolveCredentials(host, 'a', opts())).toEqual({ username: 'fallback', password: '1' })
  })

  it('fails with ERR_AUTH_HELPER_FAILED when the helper binary is missing', async () => {
    await writeJson(helperFile(), { credHelpers: { [host]: 'absent' } })
    const err = await expectCode(resolveCredentials(host, 'a', opts()), 'ERR_AUTH_HELPER_FAILED')
    expect(err.message).toContain('docker-credential-absent')
  })

  it('does not leak helper output when the helper fails', async () => {
    await writeHelper('test', `echo 'leaked-secret-out'; echo 'leaked-secret-err' >&2; exit 3`)
    await writeJson(helperFile(), { credHelpers: { [host]: 'test' } })
    const err = await expectCode(
      resolveCredentials(host, 'a', opts()),
      'ERR_AUTH_HELPER_FAILED',
      'leaked-secret',
    )
    expect(err.message).toContain('status 3')
  })

  it('rejects a reply that is not the helper JSON', async () => {
    await writeHelper('test', `echo 'Secret: plaintext-secret'`)
    await writeJson(helperFile(), { credHelpers: { [host]: 'test' } })
    await expectCode(resolveCredentials(host, 'a', opts()), 'ERR_AUTH_HELPER_FAILED', 'plaintext-secret')
  })

  it('kills a helper that hangs', async () => {
    await writeHelper('test', `exec sleep 10`)
    await writeJson(helperFile(), { credHelpers: { [host]: 'test' } })
    const started = Date.now()
    const err = await expectCode(
      resolveCredentials(host, 'a', opts({ helperTimeoutMs: 200 })),
      'ERR_AUTH_HELPER_FAILED',
    )
    expect(err.message).toContain('timed out')
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('refuses a helper suffix that would be a path', async () => {
    await writeJson(helperFile(), { credHelpers: { [host]: '../../bin/sh' } })
    await expectCode(resolveCredentials(host, 'a', opts()), 'ERR_AUTH_FILE_INVALID')
  })
})
