import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  findRegistry,
  loadRegistriesConf,
  parseRegistriesConf,
  pullSources,
  pushDestination,
  type RegistriesConf,
} from '../../../../lib/oci/registry/registries-conf.js'
import { isCofferError } from '../../../../lib/util/errors.js'

const conf = (text: string): RegistriesConf => parseRegistriesConf(text, 'test.conf')

/** The rewritten repositories, in pull order. */
const repos = (c: RegistriesConf, ref: string, byDigest = false): string[] =>
  pullSources(c, ref, byDigest).map((s) => s.repository)

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return expect.fail('expected a throw')
}

function expectInvalid(text: string, ...fragments: string[]): void {
  const err = thrown(() => conf(text))
  expect(isCofferError(err, 'ERR_REGISTRIES_CONF_INVALID')).toBe(true)
  for (const f of fragments) expect((err as Error).message).toContain(f)
}

describe('parseRegistriesConf', () => {
  it('defaults prefix to location and trims trailing slashes', () => {
    const c = conf(`
[[registry]]
location = "quay.io/ns/"
insecure = true
`)
    expect(c.registries).toEqual([
      {
        prefix: 'quay.io/ns',
        location: 'quay.io/ns',
        insecure: true,
        blocked: false,
        mirrorByDigestOnly: false,
        mirrors: [],
        source: 'test.conf',
      },
    ])
  })

  it('accepts and ignores short-name settings, aliases and credential-helpers', () => {
    const c = conf(`
unqualified-search-registries = ["docker.io", "quay.io"]
short-name-mode = "enforcing"
credential-helpers = ["containers-auth.json"]

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"

[[registry]]
location = "quay.io"
`)
    expect(c.registries.map((r) => r.prefix)).toEqual(['quay.io'])
  })

  it('rejects the version 1 format with a clear message', () => {
    expectInvalid(
      `
[registries.search]
registries = ["docker.io"]
[registries.insecure]
registries = []
`,
      'test.conf',
      'version 1',
      '[[registry]]',
    )
  })

  it('reports invalid TOML with the file and line', () => {
    expectInvalid(
      `
[[registry]]
location = "quay.io
`,
      'test.conf',
      'line 3',
    )
  })

  it('rejects wrongly typed fields naming the field', () => {
    expectInvalid('[[registry]]\nlocation = "quay.io"\ninsecure = "yes"\n', 'registry.0.insecure')
  })

  it.each([
    ['both location and prefix unset', '[[registry]]\ninsecure = true\n', 'both location and prefix'],
    ['a URL scheme', '[[registry]]\nlocation = "https://quay.io"\n', 'URI schemes'],
    ['a wildcard with a path', '[[registry]]\nprefix = "*.example.com/foo"\nlocation = "x.io"\n', 'wildcard'],
    ['a non-wildcard prefix without location', '[[registry]]\nprefix = "quay.io"\n', 'location is unset'],
    [
      'a mirror without location',
      '[[registry]]\nlocation = "q.io"\n[[registry.mirror]]\ninsecure = true\n',
      'mirror[0]',
    ],
    [
      'pull-from-mirror on the primary',
      '[[registry]]\nlocation = "q.io"\npull-from-mirror = "digest-only"\n',
      'pull-from-mirror',
    ],
    [
      'an unknown pull-from-mirror value',
      '[[registry]]\nlocation = "q.io"\n[[registry.mirror]]\nlocation = "m.io"\npull-from-mirror = "sometimes"\n',
      'pull-from-mirror',
    ],
    [
      'pull-from-mirror together with mirror-by-digest-only',
      '[[registry]]\nlocation = "q.io"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.io"\npull-from-mirror = "all"\n',
      'mirror-by-digest-only',
    ],
    [
      'conflicting insecure settings for one location',
      '[[registry]]\nprefix = "a.io/x"\nlocation = "q.io"\n[[registry]]\nprefix = "a.io/y"\nlocation = "q.io"\ninsecure = true\n',
      'insecure',
    ],
  ])('rejects %s', (_name, text, fragment) => {
    expectInvalid(text, 'test.conf', fragment)
  })

  it('keeps the first table when a prefix repeats in one file', () => {
    const c = conf(`
[[registry]]
prefix = "quay.io"
location = "first.io"
[[registry]]
prefix = "quay.io"
location = "second.io"
`)
    expect(c.registries.map((r) => r.location)).toEqual(['first.io'])
  })
})

describe('pullSources', () => {
  it('pulls an unconfigured name from its own host', () => {
    expect(pullSources(conf(''), 'quay.io/ns/repo', false)).toEqual([
      { endpoint: { location: 'quay.io', insecure: false, mirror: false }, repository: 'quay.io/ns/repo' },
    ])
  })

  it('rewrites the prefix to the location', () => {
    const c = conf(`
[[registry]]
prefix = "example.com/foo"
location = "internal.example.net:5000/bar"
insecure = true
`)
    expect(pullSources(c, 'example.com/foo/myimage', false)).toEqual([
      {
        endpoint: { location: 'internal.example.net:5000/bar', insecure: true, mirror: false },
        repository: 'internal.example.net:5000/bar/myimage',
      },
    ])
  })

  it('tries mirrors in order, then the primary, each rewritten', () => {
    const c = conf(`
[[registry]]
prefix = "docker.io/library"
location = "docker.io/library"

[[registry.mirror]]
location = "mirror-a.local/hub"
insecure = true

[[registry.mirror]]
location = "mirror-b.local"
`)
    const sources = pullSources(c, 'docker.io/library/alpine', false)
    expect(sources.map((s) => s.repository)).toEqual([
      'mirror-a.local/hub/alpine',
      'mirror-b.local/alpine',
      'docker.io/library/alpine',
    ])
    expect(sources.map((s) => [s.endpoint.mirror, s.endpoint.insecure])).toEqual([
      [true, true],
      [true, false],
      [false, false],
    ])
  })

  describe('pull-from-mirror', () => {
    const c = conf(`
[[registry]]
location = "quay.io"
[[registry.mirror]]
location = "all.local"
pull-from-mirror = "all"
[[registry.mirror]]
location = "digest.local"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tag.local"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "default.local"
`)

    it('uses all, tag-only and unset mirrors for a tag pull', () => {
      expect(repos(c, 'quay.io/a/b', false)).toEqual([
        'all.local/a/b',
        'tag.local/a/b',
        'default.local/a/b',
        'quay.io/a/b',
      ])
    })

    it('uses all, digest-only and unset mirrors for a digest pull', () => {
      expect(repos(c, 'quay.io/a/b', true)).toEqual([
        'all.local/a/b',
        'digest.local/a/b',
        'default.local/a/b',
        'quay.io/a/b',
      ])
    })

    it('reports the mode on the endpoint', () => {
      expect(pullSources(c, 'quay.io/a/b', true)[1]!.endpoint).toEqual({
        location: 'digest.local',
        insecure: false,
        mirror: true,
        pullFromMirror: 'digest-only',
      })
    })
  })

  it('mirror-by-digest-only uses mirrors only for digest pulls', () => {
    const c = conf(`
[[registry]]
location = "quay.io"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m.local"
`)
    expect(repos(c, 'quay.io/a/b', false)).toEqual(['quay.io/a/b'])
    expect(repos(c, 'quay.io/a/b', true)).toEqual(['m.local/a/b', 'quay.io/a/b'])
  })

  it('picks the longest matching prefix', () => {
    const c = conf(`
[[registry]]
prefix = "docker.io"
location = "hub-mirror.local"
[[registry]]
prefix = "docker.io/library"
location = "library-mirror.local/lib"
[[registry]]
prefix = "docker.io/library/alpine"
location = "alpine.local/a"
`)
    expect(repos(c, 'docker.io/library/alpine')).toEqual(['alpine.local/a'])
    expect(repos(c, 'docker.io/library/alpine/sub')).toEqual(['alpine.local/a/sub'])
    expect(repos(c, 'docker.io/library/busybox')).toEqual(['library-mirror.local/lib/busybox'])
    expect(repos(c, 'docker.io/someone/tool')).toEqual(['hub-mirror.local/someone/tool'])
  })

  it('matches prefixes only at a path boundary', () => {
    const c = conf(`
[[registry]]
prefix = "host.io/ns"
location = "elsewhere.io/ns"
[[registry]]
prefix = "example.com"
location = "example.net"
`)
    expect(repos(c, 'host.io/ns/repo')).toEqual(['elsewhere.io/ns/repo'])
    expect(repos(c, 'host.io/nsx/repo')).toEqual(['host.io/nsx/repo'])
    expect(repos(c, 'example.com:5000/repo')).toEqual(['example.com:5000/repo'])
    expect(repos(c, 'example.community/repo')).toEqual(['example.community/repo'])
  })

  describe('wildcard prefixes', () => {
    const c = conf(`
[[registry]]
prefix = "*.example.com"
insecure = true
[[registry.mirror]]
location = "mirror.local/wild"

[[registry]]
prefix = "*.rewrite.io"
location = "central.io/r"
`)

    it('match any subdomain, with or without a port, and keep the name as-is without a location', () => {
      expect(pullSources(c, 'a.example.com/x/y', false)).toEqual([
        {
          endpoint: { location: 'mirror.local/wild', insecure: false, mirror: true },
          repository: 'mirror.local/wild/x/y',
        },
        {
          endpoint: { location: 'a.example.com', insecure: true, mirror: false },
          repository: 'a.example.com/x/y',
        },
      ])
      expect(repos(c, 'b.a.example.com:5000/x')).toEqual(['mirror.local/wild/x', 'b.a.example.com:5000/x'])
    })

    it('do not match the bare domain or a look-alike host', () => {
      expect(findRegistry(c, 'example.com/x')).toBeUndefined()
      expect(findRegistry(c, 'a.example.com.evil.io/x')).toBeUndefined()
      expect(findRegistry(c, 'evil.io/a.example.com/x')).toBeUndefined()
    })

    it('rewrite the whole host when a location is set', () => {
      expect(repos(c, 'eu.rewrite.io:443/team/app')).toEqual(['central.io/r/team/app'])
    })

    it('lose to a literal prefix of the same length', () => {
      const tie = conf(`
[[registry]]
prefix = "*.b.io"
location = "wild.io"
[[registry]]
prefix = "ab.b.io"
location = "literal.io"
`)
      expect(repos(tie, 'ab.b.io/x')).toEqual(['literal.io/x'])
    })
  })

  it('refuses blocked registries with ERR_REGISTRY_BLOCKED, for pull and push', () => {
    const c = conf(`
[[registry]]
location = "bad.io"
blocked = true
[[registry]]
prefix = "bad.io/allowed"
location = "bad.io/allowed"
`)
    for (const op of [() => pullSources(c, 'bad.io/x', true), () => pushDestination(c, 'bad.io/x')]) {
      const err = thrown(op)
      expect(isCofferError(err, 'ERR_REGISTRY_BLOCKED')).toBe(true)
      expect((err as Error).message).toContain('test.conf')
    }
    expect(repos(c, 'bad.io/allowed/x')).toEqual(['bad.io/allowed/x'])
  })

  it('rejects a name without a repository', () => {
    expect(
      isCofferError(
        thrown(() => pullSources(conf(''), 'quay.io', false)),
        'ERR_INVALID_ARGUMENT',
      ),
    ).toBe(true)
  })
})

describe('pushDestination', () => {
  it('pushes to the name as written, without mirrors or rewrite, with the table insecure flag', () => {
    const c = conf(`
[[registry]]
prefix = "example.com/foo"
location = "internal.io/bar"
insecure = true
[[registry.mirror]]
location = "m.local"
`)
    expect(pushDestination(c, 'example.com/foo/app')).toEqual({
      endpoint: { location: 'example.com', insecure: true, mirror: false },
      repository: 'example.com/foo/app',
    })
    expect(pushDestination(c, 'other.io:5000/app')).toEqual({
      endpoint: { location: 'other.io:5000', insecure: false, mirror: false },
      repository: 'other.io:5000/app',
    })
  })
})

describe('loadRegistriesConf', () => {
  let root: string
  let home: string
  let system: string

  const write = async (path: string, text: string): Promise<void> => {
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, text)
  }
  const reg = (location: string, extra = ''): string => `[[registry]]\nlocation = "${location}"\n${extra}\n`
  const rewrite = (prefix: string, location: string): string =>
    `[[registry]]\nprefix = "${prefix}"\nlocation = "${location}"\n`
  const load = (o: Parameters<typeof loadRegistriesConf>[0] = {}) =>
    loadRegistriesConf({ env: {}, homeDir: home, systemPath: system, ...o })

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'coffer-regconf-'))
    home = join(root, 'home')
    system = join(root, 'etc/containers/registries.conf')
    await mkdir(home, { recursive: true })
  })

  afterEach(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('is empty when no file exists', async () => {
    expect(await load()).toEqual({ registries: [], sources: [] })
  })

  it('reads the system file and its drop-ins in name order, later files replacing by prefix', async () => {
    await write(system, rewrite('quay.io', 'from-main.io') + reg('keep.io'))
    await write(`${system}.d/20-b.conf`, rewrite('quay.io', 'from-20.io'))
    await write(`${system}.d/10-a.conf`, rewrite('quay.io', 'from-10.io') + reg('added.io'))
    await write(`${system}.d/30-c.conf.disabled`, rewrite('quay.io', 'ignored.io'))
    await write(`${system}.d/sub.conf/nested.conf`, rewrite('quay.io', 'nested.io'))
    const c = await load()
    expect(repos(c, 'quay.io/a')).toEqual(['from-20.io/a'])
    expect(c.registries.map((r) => r.prefix)).toEqual(['added.io', 'keep.io', 'quay.io'])
    expect(c.sources).toEqual([system, `${system}.d/10-a.conf`, `${system}.d/20-b.conf`])
  })

  it('applies the user drop-ins after the system ones', async () => {
    await write(`${system}.d/50.conf`, rewrite('quay.io', 'system.io'))
    await write(join(home, '.config/containers/registries.conf.d/01.conf'), rewrite('quay.io', 'user.io'))
    expect(repos(await load(), 'quay.io/a')).toEqual(['user.io/a'])
  })

  it('prefers the user file, then ignores the system file and system drop-ins', async () => {
    await write(system, reg('system.io', 'blocked = true'))
    await write(`${system}.d/50.conf`, rewrite('quay.io', 'system-dropin.io'))
    await write(join(home, '.config/containers/registries.conf'), reg('user.io'))
    await write(
      join(home, '.config/containers/registries.conf.d/50.conf'),
      rewrite('ghcr.io', 'user-dropin.io'),
    )
    const c = await load()
    expect(c.registries.map((r) => r.prefix)).toEqual(['ghcr.io', 'user.io'])
    expect(repos(c, 'system.io/x')).toEqual(['system.io/x'])
  })

  it('uses only an explicit path and its own .d directory', async () => {
    await write(system, reg('system.io'))
    await write(join(home, '.config/containers/registries.conf.d/50.conf'), reg('user-dropin.io'))
    const explicit = join(root, 'custom.conf')
    await write(explicit, reg('custom.io'))
    await write(`${explicit}.d/1.conf`, reg('custom-dropin.io'))
    expect((await load({ path: explicit })).registries.map((r) => r.prefix)).toEqual([
      'custom-dropin.io',
      'custom.io',
    ])
    expect((await load({ env: { CONTAINERS_REGISTRIES_CONF: explicit } })).sources[0]).toBe(explicit)
  })

  it('fails for a missing explicit path', async () => {
    await expect(load({ path: join(root, 'nope.conf') })).rejects.toSatisfy((e) =>
      isCofferError(e, 'ERR_NOT_FOUND'),
    )
  })

  it('rejects a version 1 drop-in, naming it', async () => {
    const dropIn = `${system}.d/old.conf`
    await write(dropIn, '[registries.block]\nregistries = ["x.io"]\n')
    await expect(load()).rejects.toSatisfy(
      (e) => isCofferError(e, 'ERR_REGISTRIES_CONF_INVALID') && (e as Error).message.includes(dropIn),
    )
  })
})
