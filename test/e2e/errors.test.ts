/**
 * Failures a user can cause, end to end through the real binary: each names its cause (the file,
 * value or place involved) on stderr, gives a fix as a `hint:` line (and `hint` in --json), and
 * exits with its class's code. The hints themselves are checked against the CLI: every command
 * and flag a hint tells the user to run must exist.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ERROR_HINTS } from '../../lib/util/error-hints.js'
import { collectCommands } from '../../scripts/gen-command-reference.mjs'
import { coffer } from '../helpers/coffer.js'
import { makeSampleLayout } from '../helpers/skopeo.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-errors-'))
  await makeSampleLayout(join(dir, 'plain'), 'v1')
  await mkdir(join(dir, 'empty'))
  await mkdir(join(dir, 'mnt'))
  await writeFile(join(dir, 'pass'), 'right\n')
  await writeFile(join(dir, 'wrong'), 'wrong\n')
  await writeFile(join(dir, 'policy.json'), '{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}')
  await writeFile(join(dir, 'unknown-type.json'), '{"default":[{"type":"acceptAll"}]}')
  await writeFile(join(dir, 'bad.toml'), 'kbs_url = "http://x"\nattester = [\n')
  const init = await coffer(['fs', 'init', join(dir, 'volume'), '--passphrase-file', join(dir, 'pass')])
  expect(init.code, init.stderr).toBe(0)
  // An image encrypted for a key the user then does not give.
  const keys = await coffer(['keys', 'generate', '--type', 'ec', '--out', join(dir, 'k')])
  expect(keys.code, keys.stderr).toBe(0)
  const enc = await coffer([
    'encrypt',
    '--encryption-key',
    `jwe:${join(dir, 'k.pub')}`,
    `oci:${join(dir, 'plain')}:v1`,
    `oci:${join(dir, 'encrypted')}:v1`,
  ])
  expect(enc.code, enc.stderr).toBe(0)
}, 60_000)
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

interface Case {
  name: string
  args: () => string[]
  code: string
  exit: number
  /** Text the message must contain: the cause, named. */
  names: () => string
}

const cases: Case[] = [
  {
    name: 'a layout that does not exist',
    args: () => ['copy', `oci:${join(dir, 'nope')}`, `oci:${join(dir, 'out1')}:x`],
    code: 'ERR_OCI_LAYOUT_NOT_FOUND',
    exit: 3,
    names: () => join(dir, 'nope'),
  },
  {
    name: 'an unknown transport',
    args: () => ['copy', 'ftp://host/x', `oci:${join(dir, 'out2')}:x`],
    code: 'ERR_OCI_TRANSPORT_UNKNOWN',
    exit: 2,
    names: () => 'ftp',
  },
  {
    name: 'a tag the layout lacks',
    args: () => ['copy', `oci:${join(dir, 'plain')}:v9`, `oci:${join(dir, 'out3')}:x`],
    code: 'ERR_OCI_TAG_NOT_FOUND',
    exit: 3,
    names: () => 'v9',
  },
  {
    name: 'a recipient with no scheme',
    args: () => [
      'encrypt',
      '--encryption-key',
      'key.pem',
      `oci:${join(dir, 'plain')}:v1`,
      `oci:${join(dir, 'o4')}:x`,
    ],
    code: 'ERR_CRYPT_RECIPIENT_INVALID',
    exit: 2,
    names: () => 'key.pem',
  },
  {
    name: 'pulling an encrypted image without a key',
    args: () => [
      'pull',
      '--insecure-policy',
      '--store',
      join(dir, 'store'),
      '--rootfs',
      join(dir, 'out5'),
      `oci:${join(dir, 'encrypted')}:v1`,
    ],
    code: 'ERR_CRYPT_NO_KEY',
    exit: 5,
    names: () => 'layer',
  },
  {
    name: 'a registry nobody listens on',
    args: () => ['inspect', '--tls-verify=false', '--retry-times', '1', 'docker://127.0.0.1:9/app:1'],
    code: 'ERR_REGISTRY_UNREACHABLE',
    exit: 8,
    names: () => '127.0.0.1:9',
  },
  {
    name: 'a policy requirement of an unknown type',
    args: () => ['verify', '--policy', join(dir, 'unknown-type.json'), `oci:${join(dir, 'plain')}:v1`],
    code: 'ERR_SIGN_POLICY_INVALID',
    exit: 2,
    names: () => 'default.0.type',
  },
  {
    name: 'a config file that is not TOML',
    args: () => [
      'pull',
      '--config',
      join(dir, 'bad.toml'),
      '--rootfs',
      join(dir, 'r'),
      `oci:${join(dir, 'plain')}:v1`,
    ],
    code: 'ERR_CONFIG_INVALID',
    exit: 2,
    names: () => `${join(dir, 'bad.toml')}:`,
  },
  {
    name: 'a KBS resource URI with two parts',
    args: () => ['kbs', 'get-resource', 'kbs:///repo/key'],
    code: 'ERR_KBS_RESOURCE_URI_INVALID',
    exit: 2,
    names: () => 'kbs:///repo/key',
  },
  {
    name: 'a KBS nobody listens on',
    args: () => [
      'kbs',
      'get-resource',
      '--url',
      'http://127.0.0.1:9',
      '--attester',
      'sample',
      'kbs:///a/b/c',
    ],
    code: 'ERR_KBS_UNREACHABLE',
    exit: 8,
    names: () => '127.0.0.1:9',
  },
  {
    name: 'mounting a directory that is no volume',
    args: () => [
      'mount',
      '--volume',
      join(dir, 'empty'),
      join(dir, 'mnt'),
      '--passphrase-file',
      join(dir, 'pass'),
    ],
    code: 'ERR_STORAGE_NOT_A_VOLUME',
    exit: 3,
    names: () => join(dir, 'empty'),
  },
  {
    name: 'a wrong volume passphrase',
    args: () => [
      'mount',
      '--volume',
      join(dir, 'volume'),
      join(dir, 'mnt'),
      '--passphrase-file',
      join(dir, 'wrong'),
    ],
    code: 'ERR_STORAGE_WRONG_PASSPHRASE',
    exit: 6,
    names: () => 'passphrase',
  },
]

describe('user errors name the cause and the fix', () => {
  it.each(cases)('$name → $code, exit $exit', async (c) => {
    const run = await coffer([...c.args(), '--json'], { timeoutMs: 60_000 })
    const detail = `stdout: ${run.stdout}\nstderr: ${run.stderr}`
    expect(run.code, detail).toBe(c.exit)
    const error = run.json().find((l) => 'error' in l)?.error as
      { code: string; message: string; hint: string } | undefined
    expect(error, detail).toBeDefined()
    expect(error!.code, detail).toBe(c.code)
    expect(error!.message, detail).toContain(c.names())
    expect(error!.hint).toBe(ERROR_HINTS[c.code as keyof typeof ERROR_HINTS])
    // The human form: the cause on one line, the fix on the next.
    expect(run.stderr).toContain(`[${c.code}]\n  hint: ${error!.hint}`)
    // Nothing half-written where the command would have written.
    for (const out of ['out1', 'out2', 'out3', 'o4', 'out5']) expect(await exists(join(dir, out))).toBe(false)
  })
})

describe('hints only tell users to run what exists', () => {
  let help: Map<string, string>
  beforeAll(async () => {
    help = await allHelp()
  }, 60_000)

  it('every `coffer …` command a hint names exists', () => {
    const named = new Set<string>()
    for (const hint of Object.values(ERROR_HINTS))
      for (const m of hint.matchAll(/`coffer ([^`]*)`/g)) {
        const words: string[] = []
        for (const w of m[1]!.split(' ')) {
          if (!/^[a-z][a-z-]*$/.test(w)) break
          words.push(w)
        }
        named.add(words.join(' '))
      }
    for (const command of named) expect([...help.keys()], `coffer ${command}`).toContain(command)
  })

  it('every --flag a hint names is a flag of some command', () => {
    const flags = new Set(
      [...help.values()].flatMap((text) => [...text.matchAll(/--[a-z][a-z.-]*/g)].map((m) => m[0])),
    )
    for (const hint of Object.values(ERROR_HINTS))
      for (const m of hint.matchAll(/--(?:src-|dest-)?[a-z][a-z.-]*[a-z]/g))
        expect([...flags], hint).toContain(m[0])
  })
})

/** `coffer [sub…] --help` for every command and subcommand, keyed by the command words. */
async function allHelp(): Promise<Map<string, string>> {
  return new Map((await collectCommands()).map((c) => [c.path.join(' '), c.help]))
}

async function exists(path: string): Promise<boolean> {
  const { stat } = await import('node:fs/promises')
  return stat(path).then(
    () => true,
    () => false,
  )
}
