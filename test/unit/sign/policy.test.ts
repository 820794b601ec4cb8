/** policy.json parsing (strict, coded errors) and scope lookup (the most specific scope wins). */
import { mkdtemp, rm, symlink, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseDockerReference } from '../../../lib/oci/reference.js'
import { parsePolicy, loadPolicy } from '../../../lib/sign/policy.js'
import { dockerLookupKeys, ociLookupKeys, requirementsFor } from '../../../lib/sign/policy-scope.js'
import { CofferError } from '../../../lib/util/errors.js'

const parse = (doc: unknown) => parsePolicy(Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc)))
const ACCEPT = [{ type: 'insecureAcceptAnything' }]

describe('parsePolicy refuses malformed policies with ERR_SIGN_POLICY_INVALID', () => {
  const bad: [string, unknown][] = [
    ['not JSON', '{"default": ['],
    ['not an object', '[]'],
    ['no default', { transports: {} }],
    ['empty default', { default: [] }],
    ['unknown top-level field', { default: ACCEPT, extra: 1 }],
    ['unknown requirement type', { default: [{ type: 'acceptIfNice' }] }],
    ['extra field on a requirement', { default: [{ type: 'reject', why: 'x' }] }],
    ['signedBy without keys', { default: [{ type: 'signedBy', keyType: 'GPGKeys' }] }],
    [
      'signedBy with two key sources',
      { default: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: '/k', keyData: 'AAAA' }] },
    ],
    ['signedBy without keyType', { default: [{ type: 'signedBy', keyPath: '/k' }] }],
    ['signedBy bad keyType', { default: [{ type: 'signedBy', keyType: 'PGP', keyPath: '/k' }] }],
    ['keyData not base64', { default: [{ type: 'signedBy', keyType: 'GPGKeys', keyData: '!!!' }] }],
    ['sigstoreSigned without keys', { default: [{ type: 'sigstoreSigned' }] }],
    [
      'sigstoreSigned two rekor keys',
      {
        default: [
          { type: 'sigstoreSigned', keyPath: '/k', rekorPublicKeyPath: '/r', rekorPublicKeyData: 'AAAA' },
        ],
      },
    ],
    [
      'unknown signedIdentity',
      {
        default: [
          { type: 'signedBy', keyType: 'GPGKeys', keyPath: '/k', signedIdentity: { type: 'matchAll' } },
        ],
      },
    ],
    [
      'exactReference without tag',
      {
        default: [
          {
            type: 'sigstoreSigned',
            keyPath: '/k',
            signedIdentity: { type: 'exactReference', dockerReference: 'r.io/a' },
          },
        ],
      },
    ],
    [
      'exactReference invalid',
      {
        default: [
          {
            type: 'sigstoreSigned',
            keyPath: '/k',
            signedIdentity: { type: 'exactReference', dockerReference: 'UPPER/x:1' },
          },
        ],
      },
    ],
    [
      'remapIdentity wildcard',
      {
        default: [
          {
            type: 'sigstoreSigned',
            keyPath: '/k',
            signedIdentity: { type: 'remapIdentity', prefix: '*.io', signedPrefix: 'r.io' },
          },
        ],
      },
    ],
    ['empty scope list', { default: ACCEPT, transports: { docker: { 'r.io': [] } } }],
    ['docker scope with scheme', { default: ACCEPT, transports: { docker: { 'https://r.io': ACCEPT } } }],
    ['bad wildcard', { default: ACCEPT, transports: { docker: { '*.': ACCEPT } } }],
    ['relative oci scope', { default: ACCEPT, transports: { oci: { 'images/app': ACCEPT } } }],
    ['oci scope "/"', { default: ACCEPT, transports: { oci: { '/': ACCEPT } } }],
    ['unclean oci scope', { default: ACCEPT, transports: { oci: { '/a/../b': ACCEPT } } }],
  ]
  it.each(bad)('%s', (_name, doc) => {
    expect(() => parse(doc)).toThrowError(expect.objectContaining({ code: 'ERR_SIGN_POLICY_INVALID' }))
  })

  it('never crashes on arbitrary JSON or bytes (fast-check)', () => {
    const check = (input: string | Uint8Array): void => {
      try {
        parsePolicy(typeof input === 'string' ? Buffer.from(input) : input)
      } catch (err) {
        expect(err).toBeInstanceOf(CofferError)
        expect((err as CofferError).code).toBe('ERR_SIGN_POLICY_INVALID')
      }
    }
    fc.assert(fc.property(fc.json(), check), { numRuns: 300 })
    fc.assert(fc.property(fc.uint8Array(), check), { numRuns: 100 })
    const requirement = fc.record(
      {
        type: fc.constantFrom('signedBy', 'sigstoreSigned', 'reject', 'insecureAcceptAnything', 'x'),
        keyType: fc.string(),
        keyPath: fc.string(),
        keyData: fc.string(),
        signedIdentity: fc.anything(),
      },
      { requiredKeys: ['type'] },
    )
    fc.assert(
      fc.property(fc.array(requirement), fc.dictionary(fc.string(), fc.array(requirement)), (def, scopes) =>
        check(JSON.stringify({ default: def, transports: { docker: scopes } })),
      ),
      { numRuns: 300 },
    )
  })

  it('accepts the documented example shapes', () => {
    const p = parse({
      default: [{ type: 'reject' }],
      transports: {
        docker: {
          'docker.io/library/busybox:latest': ACCEPT,
          'r.io:5000/ns': [
            {
              type: 'signedBy',
              keyType: 'GPGKeys',
              keyPaths: ['/a', '/b'],
              signedIdentity: { type: 'matchRepository' },
            },
          ],
          '*.example.com': [
            {
              type: 'sigstoreSigned',
              keyData: 'AAAA',
              signedIdentity: { type: 'remapIdentity', prefix: 'm.io/x', signedPrefix: 'r.io/y' },
            },
          ],
          '': ACCEPT,
        },
        oci: { '/srv/images': ACCEPT },
        'docker-daemon': { '': ACCEPT },
      },
    })
    expect(p.default).toEqual([{ type: 'reject' }])
  })

  it('loadPolicy: a missing file is a coded error', async () => {
    await expect(loadPolicy('/nonexistent/policy.json')).rejects.toMatchObject({
      code: 'ERR_SIGN_POLICY_INVALID',
    })
  })
})

describe('scope lookup', () => {
  const r = (n: string) => ({ type: 'signedBy', keyType: 'GPGKeys', keyPath: `/${n}` })
  const policy = parse({
    default: [{ type: 'reject' }],
    transports: {
      docker: {
        'r.io:5000/ns/app:v1': [r('exact')],
        'r.io:5000/ns/app': [r('repo')],
        'r.io:5000/ns': [r('ns')],
        'r.io:5000': [r('host')],
        '*.io': [r('wild')],
        '': [r('transport')],
      },
    },
  })
  const scopeOf = (ref: string) => requirementsFor(policy, dockerLookupKeys(parseDockerReference(ref))).scope
  it.each([
    ['r.io:5000/ns/app:v1', 'r.io:5000/ns/app:v1'],
    ['r.io:5000/ns/app:v2', 'r.io:5000/ns/app'],
    [`r.io:5000/ns/app@sha256:${'c'.repeat(64)}`, 'r.io:5000/ns/app'],
    ['r.io:5000/ns/other:v1', 'r.io:5000/ns'],
    ['r.io:5000/x/y:1', 'r.io:5000'],
    ['r.io/ns/app:v1', '*.io'],
    ['sub.r.io:5000/a:1', '*.io'],
    ['localhost:5000/a:1', ''],
  ])('%s → scope %s', (ref, scope) => {
    expect(scopeOf(ref)).toBe(`transports.docker["${scope}"]`)
  })

  it('with no docker transport entry, default applies', () => {
    const p = parse({ default: ACCEPT, transports: { oci: { '': [{ type: 'reject' }] } } })
    expect(requirementsFor(p, dockerLookupKeys(parseDockerReference('a.io/b:1'))).scope).toBe('default')
  })

  it('oci: the directory (symlinks resolved) and its parents, tag ignored', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-scope-'))
    try {
      await mkdir(join(dir, 'real/layout'), { recursive: true })
      await symlink(join(dir, 'real'), join(dir, 'link'))
      const keys = await ociLookupKeys(join(dir, 'link/layout'))
      expect(keys.identity).toBe(join(dir, 'real/layout'))
      expect(keys.namespaces[0]).toBe(join(dir, 'real/layout'))
      expect(keys.namespaces).toContain(join(dir, 'real'))
      expect(keys.namespaces).not.toContain('/')
      const p = parse({ default: [{ type: 'reject' }], transports: { oci: { [join(dir, 'real')]: ACCEPT } } })
      expect(requirementsFor(p, keys).scope).toBe(`transports.oci["${join(dir, 'real')}"]`)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
