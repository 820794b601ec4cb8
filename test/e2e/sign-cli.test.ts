/**
 * `coffer sign` / `coffer verify` / `keys generate --type cosign` as a user runs them, on paths that
 * need no registry: usage errors, malformed inputs and oci: layouts, each with its exit code.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKey } from 'openpgp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { coffer } from '../helpers/coffer.js'
import { makeSampleLayout, skopeo } from '../helpers/skopeo.js'

let work: string
const file = (name: string): string => join(work, name)
const policy = async (name: string, doc: unknown): Promise<string> => {
  await writeFile(file(name), typeof doc === 'string' ? doc : JSON.stringify(doc))
  return file(name)
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-sign-cli-'))
  await makeSampleLayout(file('layout'), 'v1')
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

describe('coffer verify on an oci: layout', () => {
  it('insecureAcceptAnything → 0, reject → 7, signedBy (no signatures in layouts) → 7', async () => {
    const image = `oci:${file('layout')}:v1`
    const ok = await coffer([
      'verify',
      '--policy',
      await policy('accept.json', { default: [{ type: 'insecureAcceptAnything' }] }),
      image,
    ])
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toMatch(/accepted \(default\)/)
    const rej = await coffer([
      'verify',
      '--policy',
      await policy('reject.json', { default: [{ type: 'reject' }] }),
      image,
    ])
    expect(rej.code).toBe(7)
    expect(rej.stderr).toMatch(/ERR_SIGN_POLICY_DENIED/)
    // The oci scope is the layout directory: a scope for it wins over default.
    const scoped = await policy('scoped.json', {
      default: [{ type: 'reject' }],
      transports: { oci: { [file('layout')]: [{ type: 'insecureAcceptAnything' }] } },
    })
    expect((await coffer(['verify', '--policy', scoped, image])).code).toBe(0)
    const { publicKey } = await generateKey({ userIDs: [{ email: 'k@example.com' }], format: 'binary' })
    const keyData = Buffer.from(publicKey).toString('base64')
    const signedBy = await policy('signedby.json', {
      default: [{ type: 'signedBy', keyType: 'GPGKeys', keyData }],
    })
    const noSig = await coffer(['verify', '--json', '--policy', signedBy, image])
    expect(noSig.code).toBe(7)
    expect(noSig.json().at(-1)).toMatchObject({ error: { code: 'ERR_SIGN_POLICY_DENIED' } })
    expect(noSig.stderr).toMatch(/no signature exists/)
    // keyData that is no keyring: a key error (2), reported before any signature is looked at
    const badKey = await policy('badkey.json', {
      default: [{ type: 'signedBy', keyType: 'GPGKeys', keyData: 'AAAA' }],
    })
    const bad = await coffer(['verify', '--json', '--policy', badKey, image])
    expect(bad.code).toBe(2)
    expect(bad.json().at(-1)).toMatchObject({ error: { code: 'ERR_SIGN_KEY_INVALID' } })
  })

  it('malformed policy files exit 2 with ERR_SIGN_POLICY_INVALID and never accept', async () => {
    for (const doc of [
      '{',
      '{"default":[]}',
      '{"default":[{"type":"insecureAcceptAnything","x":1}]}',
      '[]',
    ]) {
      const run = await coffer([
        'verify',
        '--policy',
        await policy('bad.json', doc),
        `oci:${file('layout')}:v1`,
      ])
      expect(run.code, doc).toBe(2)
      expect(run.stderr).toMatch(/ERR_SIGN_POLICY_INVALID/)
    }
    const missing = await coffer(['verify', '--policy', file('nope.json'), `oci:${file('layout')}:v1`])
    expect(missing.code).toBe(2)
  })
})

describe('policy files skopeo refuses, coffer refuses too', () => {
  it('duplicate keys (JSON.parse would keep the last one and accept)', async () => {
    const dup = await policy(
      'dup.json',
      '{"default":[{"type":"reject"}],"default":[{"type":"insecureAcceptAnything"}]}',
    )
    const image = `oci:${file('layout')}:v1`
    await expect(skopeo(['--policy', dup, 'copy', image, `oci:${file('copy')}:v1`])).rejects.toThrow(
      /Duplicate key \\?"default/,
    )
    const run = await coffer(['verify', '--policy', dup, image])
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/duplicate key "default"/)
  })
})

describe('usage errors', () => {
  it('sign needs exactly one key; verify takes --key or --policy, not both', async () => {
    const image = `oci:${file('layout')}:v1`
    expect((await coffer(['sign', image])).code).toBe(2)
    expect((await coffer(['sign', '--key', 'a', '--sign-by-gpg', 'b', image])).code).toBe(2)
    expect((await coffer(['verify', '--key', 'a', '--policy', 'b', image])).code).toBe(2)
    const missingKey = await coffer([
      'sign',
      '--sign-by-gpg',
      file('missing.asc'),
      'docker://127.0.0.1:1/a:b',
    ])
    expect(missingKey.code).toBe(2)
  })

  it('--sign-identity must be a fully specified reference (with a tag for GPG)', async () => {
    const { privateKey } = await generateKey({ userIDs: [{ email: 's@example.com' }], format: 'armored' })
    await writeFile(file('s.asc'), privateKey)
    for (const identity of ['Not/Valid', 'r.io/app', 'app:v1']) {
      const run = await coffer([
        'sign',
        '--sign-by-gpg',
        file('s.asc'),
        '--sign-identity',
        identity,
        'docker://127.0.0.1:1/a:b',
      ])
      expect(run.code, identity).toBe(2)
      expect(run.stderr).toMatch(/--sign-identity/)
    }
  })

  it('keys generate --type cosign without COSIGN_PASSWORD and without a terminal is a usage error', async () => {
    const env = { ...process.env }
    delete env.COSIGN_PASSWORD
    const run = await coffer(['keys', 'generate', '--type', 'cosign', '--out', file('k')], { env })
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/COSIGN_PASSWORD/)
  })

  it('a wrong COSIGN_PASSWORD exits 6 (ERR_SIGN_KEY_PASSWORD) before any network access', async () => {
    const gen = await coffer(['keys', 'generate', '--type', 'cosign', '--out', file('c')], {
      env: { COSIGN_PASSWORD: 'right' },
    })
    expect(gen.code, gen.stderr).toBe(0)
    const run = await coffer(['sign', '--key', file('c.key'), 'docker://127.0.0.1:1/a:b'], {
      env: { COSIGN_PASSWORD: 'wrong' },
    })
    expect(run.code).toBe(6)
    expect(run.stderr).toMatch(/ERR_SIGN_KEY_PASSWORD/)
  })

  it('a cosign signature on an oci: layout is refused (exit 11)', async () => {
    const run = await coffer(['sign', '--key', file('c.key'), `oci:${file('layout')}:v1`], {
      env: { COSIGN_PASSWORD: 'right' },
    })
    expect(run.code).toBe(11)
    expect(run.stderr).toMatch(/ERR_SIGN_UNSUPPORTED/)
  })
})
