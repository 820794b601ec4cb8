/** registries.d: merging, duplicates, which scope names the lookaside, and the lookaside layout on disk. */
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseDockerReference } from '../../../lib/oci/reference.js'
import {
  appendLookasideSignature,
  lookasideSignatureUrl,
  readLookasideSignatures,
} from '../../../lib/sign/lookaside.js'
import {
  loadRegistriesD,
  lookasideBase,
  registriesDFromDocument,
  usesSigstoreAttachments,
} from '../../../lib/sign/registries-d.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-regd-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const D = `sha256:${'d'.repeat(64)}` as const
const ref = (s: string) => parseDockerReference(s)

async function configDir(files: Record<string, string>): Promise<string> {
  const d = await mkdtemp(join(dir, 'd-'))
  for (const [name, text] of Object.entries(files)) await writeFile(join(d, name), text)
  return d
}

describe('registries.d', () => {
  it('merges *.yaml files; the most specific scope that sets a key wins; staging for writes', async () => {
    const d = await configDir({
      'a.yaml': 'default-docker:\n  lookaside: file:///default\n',
      'b.yaml': [
        'docker:',
        '  r.io:',
        '    lookaside: https://sigs.r.io',
        '    use-sigstore-attachments: true',
        '  r.io/team/app:',
        '    lookaside-staging: file:///staging',
        '    use-sigstore-attachments: false',
        '  "*.example.com":',
        '    sigstore: file:///deprecated-key',
      ].join('\n'),
      'ignored.yml': 'not: [valid',
    })
    const config = await loadRegistriesD(d)
    expect(lookasideBase(config, ref('r.io/team/app:1'), false).href).toBe('https://sigs.r.io/')
    expect(lookasideBase(config, ref('r.io/team/app:1'), true).href).toBe('file:///staging')
    expect(lookasideBase(config, ref('r.io/other:1'), true).href).toBe('https://sigs.r.io/')
    expect(lookasideBase(config, ref('a.example.com/x:1'), false).href).toBe('file:///deprecated-key')
    expect(lookasideBase(config, ref('elsewhere.io/x:1'), false).href).toBe('file:///default')
    expect(usesSigstoreAttachments(config, ref('r.io/team/app:1'))).toBe(false)
    expect(usesSigstoreAttachments(config, ref('r.io/x:1'))).toBe(true)
    expect(usesSigstoreAttachments(config, ref('q.io/x:1'))).toBe(false)
  })

  it('one document on its own (a kbs:/// resource) is read and validated as a directory file is', () => {
    const config = registriesDFromDocument(
      'default-docker:\n  use-sigstore-attachments: true\ndocker:\n  r.io:\n    lookaside: https://sigs.r.io\n',
      'kbs:///apps/registries-d/guest',
    )
    expect(usesSigstoreAttachments(config, ref('q.io/x:1'))).toBe(true)
    expect(lookasideBase(config, ref('r.io/x:1'), false).href).toBe('https://sigs.r.io/')
    expect(() =>
      registriesDFromDocument('docker:\n  r.io:\n    use-sigstore-attachments: "yes"\n', 'kbs:///a/b/c'),
    ).toThrow(
      expect.objectContaining({
        code: 'ERR_SIGN_REGISTRIES_D_INVALID',
        message: expect.stringContaining('kbs:///a/b/c'),
      }),
    )
    expect(() => registriesDFromDocument('docker: [', 'kbs:///a/b/c')).toThrow(
      expect.objectContaining({ code: 'ERR_SIGN_REGISTRIES_D_INVALID' }),
    )
  })

  it('with nothing configured: the built-in default for root and for users', async () => {
    const config = await loadRegistriesD(join(dir, 'missing'))
    expect(lookasideBase(config, ref('r.io/a:1'), false, { root: true }).href).toBe(
      'file:///var/lib/containers/sigstore',
    )
    expect(lookasideBase(config, ref('r.io/a:1'), false, { root: false, homeDir: '/home/u' }).href).toBe(
      'file:///home/u/.local/share/containers/sigstore',
    )
  })

  it.each([
    [
      'a scope defined in two files',
      { 'a.yaml': 'docker:\n  r.io: {}\n', 'b.yaml': 'docker:\n  r.io: {}\n' },
    ],
    [
      'default-docker twice',
      { 'a.yaml': 'default-docker: {}\n', 'b.yaml': 'default-docker: {lookaside: file:///x}\n' },
    ],
    ['invalid YAML', { 'a.yaml': 'docker: [' }],
    ['wrong types', { 'a.yaml': 'docker:\n  r.io:\n    use-sigstore-attachments: "yes"\n' }],
    ['a custom tag', { 'a.yaml': 'docker: !!js/function "f(){}"\n' }],
  ])('refuses %s with ERR_SIGN_REGISTRIES_D_INVALID', async (_name, files) => {
    await expect(loadRegistriesD(await configDir(files))).rejects.toMatchObject({
      code: 'ERR_SIGN_REGISTRIES_D_INVALID',
    })
  })
})

describe('lookaside store', () => {
  it('uses <base>/<repository>@<alg>=<hex>/signature-N, appends at the first free N, reads until a gap', async () => {
    const base = new URL(`file://${join(dir, 'store')}`)
    expect(lookasideSignatureUrl(new URL('https://s.io/sigs/'), 'team/app', D, 2).href).toBe(
      `https://s.io/sigs/team/app@sha256=${'d'.repeat(64)}/signature-2`,
    )
    expect(await readLookasideSignatures(base, 'team/app', D)).toEqual([])
    expect(await appendLookasideSignature(base, 'team/app', D, Buffer.from('one'))).toBe(1)
    expect(await appendLookasideSignature(base, 'team/app', D, Buffer.from('two'))).toBe(2)
    const sigDir = join(dir, 'store', `team/app@sha256=${'d'.repeat(64)}`)
    expect(await readFile(join(sigDir, 'signature-2'), 'utf8')).toBe('two')
    await writeFile(join(sigDir, 'signature-4'), 'after a gap: never read')
    const read = await readLookasideSignatures(base, 'team/app', D)
    expect(read.map((b) => Buffer.from(b).toString())).toEqual(['one', 'two'])
    expect(await appendLookasideSignature(base, 'team/app', D, Buffer.from('three'))).toBe(3)
  })

  it('reads an http lookaside until the first 404; other statuses are ERR_SIGN_STORAGE', async () => {
    const served: string[] = []
    const server = createServer((req, res) => {
      served.push(req.url ?? '')
      if (req.url?.endsWith('/signature-1')) return res.end('first')
      if (req.url?.endsWith('/signature-2')) return res.end('second')
      if (req.url?.includes('broken')) {
        res.statusCode = 500
        return res.end()
      }
      res.statusCode = 404
      res.end()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const base = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/sigs`)
      const read = await readLookasideSignatures(base, 'team/app', D)
      expect(read.map((b) => Buffer.from(b).toString())).toEqual(['first', 'second'])
      expect(served).toEqual([1, 2, 3].map((n) => `/sigs/team/app@sha256=${'d'.repeat(64)}/signature-${n}`))
      await expect(readLookasideSignatures(base, 'broken', D)).rejects.toMatchObject({
        code: 'ERR_SIGN_STORAGE',
      })
    } finally {
      await new Promise((r) => server.close(r))
    }
  })

  it('refuses to write to http(s) lookasides', async () => {
    await expect(
      appendLookasideSignature(new URL('https://s.io/'), 'a', D, Buffer.from('x')),
    ).rejects.toMatchObject({
      code: 'ERR_SIGN_UNSUPPORTED',
    })
  })

  it('an oversized signature file is refused, not buffered', async () => {
    const base = new URL(`file://${join(dir, 'big')}`)
    const sigDir = join(dir, 'big', `a@sha256=${'d'.repeat(64)}`)
    await mkdir(sigDir, { recursive: true })
    await writeFile(join(sigDir, 'signature-1'), Buffer.alloc(4 * 1024 * 1024 + 1))
    await expect(readLookasideSignatures(base, 'a', D)).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' })
  })
})
