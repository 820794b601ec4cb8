/** The coffer binary as a user meets it: help that teaches, a fast --version (the demo: demo.test.ts). */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { promisify } from 'node:util'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { COFFER_BIN, coffer } from '../helpers/coffer.js'
import { makeSampleLayout } from '../helpers/skopeo.js'

const ROOT = join(dirname(COFFER_BIN), '..', '..')

describe('coffer CLI', () => {
  it('--version prints the package version', async () => {
    const run = await coffer(['--version'])
    expect(run.code).toBe(0)
    expect(run.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
  })

  /**
   * Our modules reachable from `file` through static imports (dynamic import() is how code loads
   * lazily), as paths under dist/. The command itself is a bundle (scripts/bundle-cli.mjs): a
   * bundle file counts as the source modules its source map lists, so the check is on what runs.
   */
  async function staticImports(file: string): Promise<string[]> {
    const seen = new Set<string>()
    const modules = new Set<string>()
    const visit = async (f: string): Promise<void> => {
      if (seen.has(f)) return
      seen.add(f)
      const text = await readFile(f, 'utf8')
      if (f.includes('/dist/bundle/')) {
        const map = JSON.parse(await readFile(`${f}.map`, 'utf8')) as { sources: string[] }
        for (const source of map.sources) {
          const path = relative(ROOT, join(dirname(f), source))
          if (!path.startsWith('node_modules/')) modules.add(path.replace(/\.ts$/, '.js'))
        }
      } else modules.add(relative(join(ROOT, 'dist'), f))
      for (const m of text.matchAll(/^import\s[^'"]*['"](\.[^'"]+)['"]/gm))
        await visit(join(dirname(f), m[1]!))
    }
    await visit(file)
    return [...modules].sort()
  }

  it('start-up loads no command code: the entry point imports commands only when they run', async () => {
    expect(await staticImports(COFFER_BIN)).toEqual([
      'cli/bool-flags.js',
      'cli/main.js',
      'cli/run.js',
      'lib/util/errors.js',
    ])
  })

  it('a plain copy or inspect loads no crypto: wrappers, keys and key providers load only for crypto flags', async () => {
    for (const command of ['copy', 'inspect']) {
      const reached = await staticImports(join(dirname(COFFER_BIN), 'commands', `${command}.js`))
      // Light modules (types, constants, media types) are fine; wrappers, keys and providers are not.
      const light = new Set(['lib/crypt/media-types.js', 'lib/crypt/describe.js', 'lib/crypt/keywrap.js'])
      const heavy = reached.filter(
        (f) => f.startsWith('plugins/') || (f.startsWith('lib/crypt/') && !light.has(f)),
      )
      expect(heavy).toEqual([])
    }
  })

  it('encryption loads only the key wrappers it uses: no attester or verifier code, pkcs7 and pgp on demand', async () => {
    const reached = await staticImports(join(dirname(COFFER_BIN), '..', 'plugins', 'keywraps.js'))
    expect(reached.filter((f) => /^(plugins\/(attester|verifier)|lib\/attest)\//.test(f))).toEqual([])
    expect(reached).toContain('plugins/keywrap/jwe/jwe-keywrap.js')
    // pkcs7 (ASN.1 schemas) and pgp (OpenPGP.js) load on their first wrap or unwrap.
    expect(reached).not.toContain('plugins/keywrap/pkcs7/pkcs7-keywrap.js')
    expect(reached).not.toContain('plugins/keywrap/pgp/pgp-keywrap.js')
  })

  it.each(['copy', 'inspect', 'gc', 'demo'])('%s --help explains the command', async (cmd) => {
    const run = await coffer([cmd, '--help'])
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(`Usage: coffer ${cmd}`)
    if (cmd === 'copy' || cmd === 'inspect') expect(run.stdout).toContain('Examples:')
  })

  it('top-level help names the transports and the exit codes', async () => {
    const run = await coffer(['--help'])
    expect(run.stdout).toContain('oci:DIR[:TAG]')
    expect(run.stdout).toContain('docker://HOST[:PORT]/REPO[:TAG|@DIGEST]')
    expect(run.stdout).toContain('Exit codes')
  })

  it('an unknown command or flag is a usage error', async () => {
    expect((await coffer(['frobnicate'])).code).toBe(2)
    const bad = await coffer(['copy', '--no-such-flag', 'oci:a', 'oci:b'])
    expect(bad.code).toBe(2)
    expect((await coffer(['copy', 'oci:only-one'])).code).toBe(2)
    expect(bad.stderr).toContain('unknown option')
  })
})

describe('coffer keys generate', () => {
  it('writes private keys 0600, refuses to overwrite, and makes 32-byte aes keys', async () => {
    const work = await mkdtemp(join(tmpdir(), 'coffer-keys-'))
    try {
      expect(
        (await coffer(['keys', 'generate', '--type', 'rsa', '--bits', '2048', '--out', join(work, 'r')]))
          .code,
      ).toBe(0)
      expect((await stat(join(work, 'r.key'))).mode & 0o777).toBe(0o600)
      expect(await readFile(join(work, 'r.pub'), 'utf8')).toContain('BEGIN PUBLIC KEY')
      const again = await coffer(['keys', 'generate', '--type', 'rsa', '--out', join(work, 'r')])
      expect(again.code).toBe(2)
      expect(again.stderr).toContain('--force')
      expect((await coffer(['keys', 'generate', '--type', 'aes', '--out', join(work, 'k')])).code).toBe(0)
      expect((await readFile(join(work, 'k.key'))).length).toBe(32)
      expect((await stat(join(work, 'k.key'))).mode & 0o777).toBe(0o600)
      expect((await coffer(['keys', 'generate', '--type', 'dsa', '--out', join(work, 'd')])).code).toBe(2)
      expect(
        (await coffer(['keys', 'generate', '--type', 'ec', '--curve', 'P-999', '--out', join(work, 'e')]))
          .code,
      ).toBe(2)
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  })
})

describe('progress output', () => {
  it('draws bars with human sizes on a terminal, and plain lines elsewhere', async () => {
    const work = await mkdtemp(join(tmpdir(), 'coffer-tty-'))
    try {
      await makeSampleLayout(join(work, 'src'), 'v1', { layers: 2, layerBytes: 3_000_000 })
      // util-linux `script` gives the command a real pseudo-terminal.
      const cmd = `${process.execPath} ${COFFER_BIN} copy oci:${join(work, 'src')}:v1 oci:${join(work, 'tty')}:x`
      const tty = await promisify(execFile)('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8' })
      const screen = tty.stdout.replace(/\r/g, '\n')
      expect(screen).toMatch(/Copying blob sha256:[0-9a-f]{12} \[[█░]+\] 100% \| 2\.9 MiB \/ 2\.9 MiB/)
      expect(screen).not.toContain('{')
      const plain = await coffer(['copy', `oci:${join(work, 'src')}:v1`, `oci:${join(work, 'plain')}:x`])
      expect(plain.stderr).toMatch(/^Copying blob sha256:[0-9a-f]{12} \(2\.9 MiB\)$/m)
      expect(plain.stderr).not.toContain('█')
      const quiet = await coffer([
        'copy',
        '-q',
        `oci:${join(work, 'src')}:v1`,
        `oci:${join(work, 'quiet')}:x`,
      ])
      expect(quiet.stdout + quiet.stderr).toBe('')
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  })
})
