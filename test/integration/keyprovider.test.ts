/**
 * The provider KeyWrapper against `coffer keyprovider` as separate processes, over both transports
 * ocicrypt speaks: cmd (configured through OCICRYPT_KEYPROVIDER_CONFIG, one process per call) and
 * gRPC on 127.0.0.1. Plus fake providers that misbehave: garbage, failure, hanging, flooding, and
 * one that records what it was sent, to check no private key material reaches a provider (§2.5).
 *
 * Needs `dist/` (`npm run build`; `npm test` builds first). The server runs through a small script
 * that calls `keyproviderCommand` from dist the way cli/main.ts will, so this test does not depend
 * on the command being wired into main.ts.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { KeyWrapper } from '../../lib/crypt/keywrap.js'
import { CofferError } from '../../lib/util/errors.js'
import { createProviderKeyWrapper, loadProviderKeyWrappers } from '../../plugins/keywrap/provider/index.js'
import { keyWrapperSuite, samplePrivateOptions } from '../suites/keywrap.js'

const DIST = fileURLToPath(new URL('../../dist/', import.meta.url))

/** Parses the flags cli/main.ts will declare and runs the command as main.ts does. */
const SERVER_SCRIPT = `
import { run } from ${JSON.stringify(pathToFileURL(join(DIST, 'cli/run.js')).href)}
import { keyproviderCommand } from ${JSON.stringify(pathToFileURL(join(DIST, 'cli/commands/keyprovider.js')).href)}
const opts = { kek: [] }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  if (a === '--kek') opts.kek.push(argv[++i])
  else if (a === '--name') opts.name = argv[++i]
  else if (a === '--grpc') opts.grpc = argv[++i]
  else if (a === '--json') opts.json = true
  else throw new Error('unknown flag ' + a)
}
await run(opts, (ctx) => keyproviderCommand(opts, ctx))
`

let dir: string
let serverScript: string
let kekArgs: string[]

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-keyprovider-'))
  serverScript = join(dir, 'keyprovider-server.mjs')
  await writeFile(serverScript, SERVER_SCRIPT)
  kekArgs = []
  for (const kid of ['a', 'b', 'c']) {
    const file = join(dir, `${kid}.kek`)
    // a and c raw, b as base64 text: both forms the server accepts.
    const kek = randomBytes(32)
    await writeFile(file, kid === 'b' ? kek.toString('base64') : kek, { mode: 0o600 })
    kekArgs.push('--kek', `${kid}=${file}`)
  }
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function flip(s: string): string {
  const i = Math.floor(s.length / 2)
  return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
}
function tamper(wrapped: Uint8Array): Uint8Array[] {
  const jwe = JSON.parse(Buffer.from(wrapped).toString()) as Record<string, unknown> & {
    recipients: { encrypted_key: string }[]
  }
  const out = ['ciphertext', 'tag', 'iv', 'protected'].map((m) =>
    Buffer.from(JSON.stringify({ ...jwe, [m]: flip(jwe[m] as string) })),
  )
  const recipients = jwe.recipients.map((r, i) =>
    i === 0 ? { ...r, encrypted_key: flip(r.encrypted_key) } : r,
  )
  return [...out, Buffer.from(JSON.stringify({ ...jwe, recipients }))]
}

const param = (name: string, value: string) => ({ [`provider.${name}`]: [Buffer.from(value)] })

async function writeConfig(providers: Record<string, unknown>): Promise<string> {
  const path = join(dir, `kp-${randomBytes(4).toString('hex')}.json`)
  await writeFile(path, JSON.stringify({ 'key-providers': providers }))
  return path
}

/** A fake cmd provider: a node script run with `node -e`. */
const fake = (name: string, code: string) => ({
  name,
  transport: { kind: 'cmd' as const, path: process.execPath, args: ['-e', code] },
})

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (err === undefined) return undefined
  expect(err).toBeInstanceOf(CofferError)
  return (err as CofferError).code
}

/** Runs the server script once in cmd mode with `stdin`. */
function runCmdServer(
  args: string[],
  stdin: string | Buffer,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [serverScript, ...args])
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin)
  })
}

// === cmd mode, configured the way ocicrypt is
describe('cmd mode: provider wrapper ↔ coffer keyprovider via OCICRYPT_KEYPROVIDER_CONFIG', () => {
  let wrapper: KeyWrapper
  beforeAll(async () => {
    const cfg = await writeConfig({
      local: { cmd: { path: process.execPath, args: [serverScript, '--name', 'local', ...kekArgs] } },
    })
    const wrappers = await loadProviderKeyWrappers(
      { OCICRYPT_KEYPROVIDER_CONFIG: cfg },
      { timeoutMs: 20_000 },
    )
    expect(wrappers.map((w) => w.annotationId)).toEqual(['org.opencontainers.image.enc.keys.provider.local'])
    wrapper = wrappers[0]!
  })

  keyWrapperSuite('provider (cmd, coffer keyprovider process)', async () => ({
    wrapper,
    recipients: [
      { ec: param('local', 'kid=a'), dc: param('local', 'kid=a') },
      { ec: param('local', 'kid=b'), dc: param('local', 'kid=b') },
    ],
    unrelated: param('local', 'kid=c'),
    tamper,
  }))

  it('a wrap failure carries the server’s stderr (code and message)', async () => {
    const err = (await wrapper
      .wrapKeys(param('local', 'kid=zz'), Buffer.from('x'))
      .catch((e: unknown) => e)) as CofferError
    expect(err.code).toBe('ERR_CRYPT_PROVIDER_FAILED')
    expect(err.message).toContain('no KEK "zz"')
    expect(err.message).toContain('ERR_CRYPT_NO_KEY')
  })
})

describe('cmd mode: the server refuses malformed requests with coded errors', () => {
  it.each([
    ['garbage', 'this is not json'],
    ['a wrong shape', '{"op":"keywrap","keywrapparams":{"optsdata":42}}'],
    ['nothing', ''],
  ])('%s → exit 2, ERR_CRYPT_PROVIDER_REQUEST_INVALID on stderr, nothing on stdout', async (_what, input) => {
    const r = await runCmdServer(kekArgs, input)
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain('[ERR_CRYPT_PROVIDER_REQUEST_INVALID]')
  })

  it('a request over 1 MiB is refused without reading it all into a response', async () => {
    const r = await runCmdServer(kekArgs, Buffer.alloc(1024 * 1024 + 10, 0x20))
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('larger than')
  })

  it('answers a Go-ocicrypt-shaped request, ignoring private keys in ec.DecryptConfig', async () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64')
    const req = {
      op: 'keywrap',
      keywrapparams: {
        ec: {
          Parameters: { coffer: [b64('kid=a')] },
          DecryptConfig: { Parameters: { privkeys: [b64('KEY')] } },
        },
        optsdata: b64('{"symkey":"abc"}'),
      },
      keyunwrapparams: { dc: null, annotation: null },
    }
    const r = await runCmdServer(kekArgs, JSON.stringify(req))
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as { keywrapresults: { annotation: number[] } }
    const annotation = Buffer.from(out.keywrapresults.annotation)
    expect(JSON.parse(annotation.toString()).recipients[0].header).toEqual({ alg: 'A256KW', kid: 'a' })
  })
})

// === gRPC mode
describe('gRPC mode: provider wrapper ↔ coffer keyprovider --grpc 127.0.0.1:0', () => {
  let server: ChildProcessWithoutNullStreams
  let address: string
  let exited: Promise<number | null>
  beforeAll(async () => {
    server = spawn(process.execPath, [serverScript, '--grpc', '127.0.0.1:0', '--json', ...kekArgs])
    exited = new Promise((resolve) => server.on('exit', (code) => resolve(code)))
    address = await new Promise<string>((resolve, reject) => {
      let out = ''
      server.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const line = out.split('\n').find((l) => l.includes('listening'))
        if (line) resolve((JSON.parse(line) as { listening: string }).listening)
      })
      server.on('exit', (code) => reject(new Error(`server exited with ${code}`)))
    })
  })
  afterAll(() => {
    if (server.exitCode === null) server.kill('SIGKILL')
  })

  const wrapper = (): KeyWrapper =>
    createProviderKeyWrapper({ name: 'coffer', transport: { kind: 'grpc', address } })
  keyWrapperSuite('provider (gRPC, coffer keyprovider process)', async () => ({
    wrapper: wrapper(),
    recipients: [
      { ec: param('coffer', 'kid=a'), dc: param('coffer', 'kid=a') },
      { ec: param('coffer', 'kid=b'), dc: param('coffer', 'kid=b') },
    ],
    unrelated: param('coffer', 'kid=c'),
    tamper,
  }))

  it('listens on loopback, and stops cleanly (exit 0) on SIGTERM', async () => {
    expect(address).toMatch(/^127\.0\.0\.1:\d+$/)
    const k = samplePrivateOptions()
    expect(
      Buffer.from(
        await wrapper().unwrapKey(
          param('coffer', 'Enabled'),
          await wrapper().wrapKeys(param('coffer', 'kid=a'), k),
        ),
      ),
    ).toEqual(k)
    server.kill('SIGTERM')
    expect(await exited).toBe(0)
  })
})

// === misbehaving providers
describe('cmd providers that misbehave', () => {
  const ec = (name: string) => param(name, 'Enabled')

  it('garbage on stdout → ERR_CRYPT_PROVIDER_PROTOCOL, on wrap and on unwrap', async () => {
    const w = createProviderKeyWrapper(
      fake(
        'g',
        'process.stdin.resume();process.stdin.on("end",()=>process.stdout.write("<html>oops</html>"))',
      ),
    )
    expect(await codeOf(w.wrapKeys(ec('g'), Buffer.from('x')))).toBe('ERR_CRYPT_PROVIDER_PROTOCOL')
    expect(await codeOf(w.unwrapKey(ec('g'), Buffer.from('x')))).toBe('ERR_CRYPT_PROVIDER_PROTOCOL')
  })

  it('valid JSON of the wrong shape → ERR_CRYPT_PROVIDER_PROTOCOL', async () => {
    const w = createProviderKeyWrapper(
      fake('s', 'process.stdout.write(JSON.stringify({keyunwrapresults:{optsdata:"%%"}}))'),
    )
    expect(await codeOf(w.unwrapKey(ec('s'), Buffer.from('x')))).toBe('ERR_CRYPT_PROVIDER_PROTOCOL')
  })

  it('a provider that hangs is killed: ERR_CRYPT_PROVIDER_TIMEOUT within the limit', async () => {
    const w = createProviderKeyWrapper(fake('h', 'setInterval(()=>{},1000)'), { timeoutMs: 500 })
    const t0 = Date.now()
    expect(await codeOf(w.wrapKeys(ec('h'), Buffer.from('x')))).toBe('ERR_CRYPT_PROVIDER_TIMEOUT')
    expect(Date.now() - t0).toBeLessThan(3_000)
  })

  it('a provider that floods stdout past 1 MiB → ERR_CRYPT_PROVIDER_PROTOCOL, and is stopped', async () => {
    const w = createProviderKeyWrapper(
      fake(
        'f',
        'const b=Buffer.alloc(65536,97);(function go(){while(process.stdout.write(b));process.stdout.once("drain",go)})()',
      ),
    )
    const err = (await w.wrapKeys(ec('f'), Buffer.from('x')).catch((e: unknown) => e)) as CofferError
    expect(err.code).toBe('ERR_CRYPT_PROVIDER_PROTOCOL')
    expect(err.message).toContain('larger than')
  })

  it('a failing provider: wrap shows its stderr; unwrap is the fixed decryption failure', async () => {
    const w = createProviderKeyWrapper(fake('x', 'console.error("no such key: k1");process.exit(3)'))
    const err = (await w.wrapKeys(ec('x'), Buffer.from('x')).catch((e: unknown) => e)) as CofferError
    expect(err.code).toBe('ERR_CRYPT_PROVIDER_FAILED')
    expect(err.message).toContain('exited with status 3: no such key: k1')
    const unwrapErr = (await w.unwrapKey(ec('x'), Buffer.from('x')).catch((e: unknown) => e)) as CofferError
    expect([unwrapErr.code, unwrapErr.message, unwrapErr.cause]).toEqual([
      'ERR_CRYPT_DECRYPT_FAILED',
      'decryption failed',
      undefined,
    ])
  })

  it('a provider that cannot be run → ERR_CRYPT_PROVIDER_FAILED naming it', async () => {
    const w = createProviderKeyWrapper({
      name: 'm',
      transport: { kind: 'cmd', path: join(dir, 'no-such-binary'), args: [] },
    })
    const err = (await w.wrapKeys(ec('m'), Buffer.from('x')).catch((e: unknown) => e)) as CofferError
    expect(err.code).toBe('ERR_CRYPT_PROVIDER_FAILED')
    expect(err.message).toContain('ENOENT')
  })

  it('an empty annotation is refused, so a layer is never encrypted for nobody', async () => {
    const w = createProviderKeyWrapper(
      fake('e', 'process.stdout.write(JSON.stringify({keywrapresults:{annotation:null}}))'),
    )
    expect(await codeOf(w.wrapKeys(ec('e'), Buffer.from('x')))).toBe('ERR_CRYPT_NO_KEY')
  })

  it('a provider gets only its own parameters: no private keys, passwords or other recipients (§2.5)', async () => {
    const log = join(dir, 'seen.json')
    const record = `let s="";process.stdin.on("data",d=>s+=d);process.stdin.on("end",()=>{require("fs").appendFileSync(${JSON.stringify(log)},s+"\\n");process.stdout.write(JSON.stringify(JSON.parse(s).op==="keywrap"?{keywrapresults:{annotation:"d3JhcHBlZA=="}}:{keyunwrapresults:{optsdata:"b3B0cw=="}}))})`
    const w = createProviderKeyWrapper(fake('rec', record))
    const secret = 'PRIVATE-KEY-MATERIAL'
    const ecAll = {
      ...param('rec', 'kid=a'),
      ...param('other', 'kid=zzz'),
      pubkeys: [Buffer.from('-----BEGIN PUBLIC KEY-----')],
    }
    const dcAll = {
      ...param('rec', 'Enabled'),
      privkeys: [Buffer.from(secret)],
      privkeysPasswords: [Buffer.from('hunter2')],
    }
    expect(Buffer.from(await w.wrapKeys(ecAll, Buffer.from('opts'))).toString()).toBe('wrapped')
    expect(Buffer.from(await w.unwrapKey(dcAll, Buffer.from('wrapped'))).toString()).toBe('opts')
    const seen = (await readFile(log, 'utf8')).trim().split('\n')
    expect(seen).toHaveLength(2)
    const all = seen.join('\n')
    for (const s of [secret, 'hunter2', 'zzz', 'PUBLIC KEY'])
      expect(all).not.toContain(Buffer.from(s).toString('base64').slice(0, 12))
    const [wrapReq, unwrapReq] = seen.map((l) => JSON.parse(l) as Record<string, Record<string, unknown>>)
    expect(wrapReq!.keywrapparams!.ec).toEqual({
      Parameters: { rec: [Buffer.from('kid=a').toString('base64')] },
      DecryptConfig: { Parameters: {} },
    })
    expect(unwrapReq!.keyunwrapparams!.dc).toEqual({
      Parameters: { rec: [Buffer.from('Enabled').toString('base64')] },
    })
  })

  it('a provider the user did not name is not asked to unwrap (noPossibleKeys)', () => {
    const w = createProviderKeyWrapper(fake('n', 'process.exit(1)'))
    expect(w.noPossibleKeys({ privkeys: [Buffer.from('k')] })).toBe(true)
    expect(w.noPossibleKeys(param('n', 'Enabled'))).toBe(false)
  })
})
