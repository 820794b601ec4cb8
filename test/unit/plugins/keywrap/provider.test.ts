/**
 * The keyprovider wrapper and its protocol pieces: wire-format schemas (ocicrypt's Go JSON, spec
 * §2.3), config parsing (§2.1), recipient strings (§2.2), the KEK JWE, and the conformance suite
 * against a real `coffer keyprovider` gRPC server in this process on 127.0.0.1.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseKeyProviderConfig, loadKeyProviderConfig } from '../../../../lib/crypt/keyprovider/config.js'
import {
  KEYPROVIDER_PROTO,
  KEYPROVIDER_PROTO_JSON,
  PROTO_LOADER_OPTIONS,
} from '../../../../lib/crypt/keyprovider/grpc.js'
import { kidFromParameter, unwrapWithKeks, wrapWithKeks } from '../../../../lib/crypt/keyprovider/kek-wrap.js'
import { MAX_PROVIDER_MESSAGE_BYTES } from '../../../../lib/crypt/keyprovider/limits.js'
import {
  encodeProviderRequest,
  encodeProviderResponse,
  parseProviderRequest,
  parseProviderResponse,
} from '../../../../lib/crypt/keyprovider/protocol.js'
import {
  grpcListenAddress,
  startKeyProviderGrpcServer,
  type RunningGrpcServer,
} from '../../../../lib/crypt/keyprovider/grpc-server.js'
import {
  createKekKeyProvider,
  handleKeyProviderRequest,
  loadKeyring,
  serveKeyProviderCmd,
} from '../../../../lib/crypt/keyprovider/server.js'
import { CofferError } from '../../../../lib/util/errors.js'
import {
  createProviderKeyWrapper,
  createProviderKeyWrappers,
  parseProviderRecipient,
} from '../../../../plugins/keywrap/provider/index.js'
import { expectDecryptFailed, keyWrapperSuite, samplePrivateOptions } from '../../../suites/keywrap.js'

type CallUnary = (req: unknown, cb: (e: grpc.ServiceError) => void) => void

const b64 = (s: string): string => Buffer.from(s).toString('base64')

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (err) {
    expect(err).toBeInstanceOf(CofferError)
    return (err as CofferError).code
  }
  return undefined
}

/** Flips one character in the middle of a base64url member (always changes the bytes). */
function flip(s: string): string {
  const i = Math.floor(s.length / 2)
  return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
}

/** One variant per cryptographic part of a KEK JWE (kek-wrap.ts). */
function tamperKekJwe(wrapped: Uint8Array): Uint8Array[] {
  const jwe = JSON.parse(Buffer.from(wrapped).toString()) as Record<string, unknown> & {
    recipients: { header: unknown; encrypted_key: string }[]
  }
  const out = ['ciphertext', 'tag', 'iv', 'protected'].map((m) =>
    Buffer.from(JSON.stringify({ ...jwe, [m]: flip(jwe[m] as string) })),
  )
  const recipients = jwe.recipients.map((r, i) =>
    i === 0 ? { ...r, encrypted_key: flip(r.encrypted_key) } : r,
  )
  out.push(Buffer.from(JSON.stringify({ ...jwe, recipients })))
  return out
}

describe('keyprovider protocol: requests (spec §2.3)', () => {
  it('a keywrap request has ocicrypt’s exact shape and carries only the one provider’s parameters', () => {
    const body = encodeProviderRequest({
      op: 'keywrap',
      parameters: { kms: [Buffer.from('kid=a')] },
      optsdata: Buffer.from('{"symkey":"x"}'),
    })
    expect(JSON.parse(body.toString())).toEqual({
      op: 'keywrap',
      keywrapparams: {
        ec: { Parameters: { kms: [b64('kid=a')] }, DecryptConfig: { Parameters: {} } },
        optsdata: b64('{"symkey":"x"}'),
      },
      keyunwrapparams: { dc: null, annotation: null },
    })
  })

  it('a keyunwrap request has ocicrypt’s exact shape', () => {
    const body = encodeProviderRequest({
      op: 'keyunwrap',
      parameters: { kms: [Buffer.from('Enabled')] },
      annotation: Buffer.from('wrapped'),
    })
    expect(JSON.parse(body.toString())).toEqual({
      op: 'keyunwrap',
      keywrapparams: { ec: null, optsdata: null },
      keyunwrapparams: { dc: { Parameters: { kms: [b64('Enabled')] } }, annotation: b64('wrapped') },
    })
  })

  it('parses what Go ocicrypt sends, and drops ec.DecryptConfig (private keys) on the floor', () => {
    const go = JSON.stringify({
      op: 'keywrap',
      keywrapparams: {
        ec: {
          Parameters: { coffer: [b64('kid=a')], pubkeys: [b64('PEM')] },
          DecryptConfig: { Parameters: { privkeys: [b64('SECRET')] } },
        },
        optsdata: b64('opts'),
      },
      keyunwrapparams: { dc: null, annotation: null },
    })
    const req = parseProviderRequest(Buffer.from(go))
    expect(req).toEqual({
      op: 'keywrap',
      parameters: { coffer: [Buffer.from('kid=a')], pubkeys: [Buffer.from('PEM')] },
      optsdata: Buffer.from('opts'),
    })
    expect(JSON.stringify(req)).not.toContain(b64('SECRET'))
  })

  it('accepts []byte as a JSON array of byte values (ocicrypt-rs, CDH), and nil entries', () => {
    const rs = JSON.stringify({
      op: 'keyunwrap',
      keywrapparams: { ec: null, optsdata: null },
      keyunwrapparams: { dc: { Parameters: { coffer: [[69, 110]], other: null } }, annotation: [1, 2, 3] },
    })
    expect(parseProviderRequest(Buffer.from(rs))).toEqual({
      op: 'keyunwrap',
      parameters: { coffer: [Buffer.from('En')], other: [] },
      annotation: Buffer.from([1, 2, 3]),
    })
  })

  it.each([
    ['not JSON', '{"op":'],
    ['an unknown op', '{"op":"keysteal"}'],
    ['keywrap without optsdata', '{"op":"keywrap","keywrapparams":{"ec":null,"optsdata":null}}'],
    ['keyunwrap without annotation', '{"op":"keyunwrap","keyunwrapparams":{"dc":null}}'],
    ['non-base64 bytes', '{"op":"keyunwrap","keyunwrapparams":{"annotation":"a b!"}}'],
    ['URL-alphabet base64', '{"op":"keyunwrap","keyunwrapparams":{"annotation":"__8="}}'],
    ['byte values out of range', '{"op":"keyunwrap","keyunwrapparams":{"annotation":[256]}}'],
    ['an array', '[]'],
  ])('refuses %s with ERR_CRYPT_PROVIDER_REQUEST_INVALID', async (_what, body) => {
    expect(await codeOf(() => parseProviderRequest(Buffer.from(body)))).toBe(
      'ERR_CRYPT_PROVIDER_REQUEST_INVALID',
    )
  })

  it('refuses a request over the 1 MiB limit, and one whose op does not fit the gRPC method', async () => {
    const big = Buffer.alloc(MAX_PROVIDER_MESSAGE_BYTES + 1, 0x20)
    expect(await codeOf(() => parseProviderRequest(big))).toBe('ERR_CRYPT_PROVIDER_REQUEST_INVALID')
    const wrap = encodeProviderRequest({ op: 'keywrap', parameters: {}, optsdata: Buffer.from('x') })
    expect(await codeOf(() => parseProviderRequest(wrap, 'keyunwrap'))).toBe(
      'ERR_CRYPT_PROVIDER_REQUEST_INVALID',
    )
  })
})

describe('keyprovider protocol: responses (spec §2.3)', () => {
  it('writes byte arrays by default and base64 on request; reads both', () => {
    const arr = encodeProviderResponse('keyunwrap', Buffer.from('ok'))
    expect(JSON.parse(arr.toString())).toEqual({ keyunwrapresults: { optsdata: [111, 107] } })
    const std = encodeProviderResponse('keywrap', Buffer.from('ok'), 'base64')
    expect(JSON.parse(std.toString())).toEqual({ keywrapresults: { annotation: b64('ok') } })
    expect(parseProviderResponse(arr, 'keyunwrap', 'p')).toEqual(Buffer.from('ok'))
    expect(parseProviderResponse(std, 'keywrap', 'p')).toEqual(Buffer.from('ok'))
  })

  it('an empty or null result reads as empty (ocicrypt: no recipient)', () => {
    expect(
      parseProviderResponse(Buffer.from('{"keywrapresults":{"annotation":null}}'), 'keywrap', 'p'),
    ).toEqual(Buffer.alloc(0))
  })

  it.each([
    ['garbage', 'hello'],
    ['the other op’s result', '{"keywrapresults":{"annotation":"b2s="}}'],
    ['no result', '{}'],
    ['a string where bytes belong', '{"keyunwrapresults":{"optsdata":"not base64!"}}'],
    ['a number', '42'],
  ])('refuses %s with ERR_CRYPT_PROVIDER_PROTOCOL naming the provider', (_what, body) => {
    try {
      parseProviderResponse(Buffer.from(body), 'keyunwrap', 'kms')
      expect.unreachable()
    } catch (err) {
      expect((err as CofferError).code).toBe('ERR_CRYPT_PROVIDER_PROTOCOL')
      expect((err as CofferError).message).toContain('"kms"')
    }
  })
})

describe('keyprovider config (spec §2.1)', () => {
  it('parses cmd and grpc entries in order; cmd wins over grpc', () => {
    const cfg = parseKeyProviderConfig(
      Buffer.from(
        JSON.stringify({
          'key-providers': {
            a: { cmd: { path: '/bin/a', args: ['-x'] } },
            b: { grpc: '127.0.0.1:50000' },
            c: { cmd: { path: '/bin/c' }, grpc: 'h:1' },
            d: { grpc: 'h:1', 'grpc-tls': { 'root-ca-file': '/ca' } },
            e: { ttrpc: 'unix:///run/x.sock' },
          },
        }),
      ),
      'cfg',
    )
    expect(cfg.providers).toEqual([
      { name: 'a', transport: { kind: 'cmd', path: '/bin/a', args: ['-x'] } },
      { name: 'b', transport: { kind: 'grpc', address: '127.0.0.1:50000' } },
      { name: 'c', transport: { kind: 'cmd', path: '/bin/c', args: [] } },
      { name: 'd', transport: { kind: 'unsupported', reason: 'grpc-tls is not supported yet' } },
      { name: 'e', transport: { kind: 'unsupported', reason: 'ttrpc providers are not supported' } },
    ])
    expect(createProviderKeyWrappers(cfg).map((w) => [w.name, w.annotationId])).toEqual(
      ['a', 'b', 'c', 'd', 'e'].map((n) => [
        `provider.${n}`,
        `org.opencontainers.image.enc.keys.provider.${n}`,
      ]),
    )
  })

  it.each([
    ['not JSON', '{'],
    ['a cmd without path', '{"key-providers":{"a":{"cmd":{"args":[]}}}}'],
    ['a name with ":"', '{"key-providers":{"a:b":{"grpc":"h:1"}}}'],
    ['args that are not strings', '{"key-providers":{"a":{"cmd":{"path":"/x","args":[1]}}}}'],
  ])('refuses %s with ERR_CONFIG_INVALID', async (_what, text) => {
    expect(await codeOf(() => parseKeyProviderConfig(Buffer.from(text), 'cfg'))).toBe('ERR_CONFIG_INVALID')
  })

  it('no variable or a missing file means no providers, as in ocicrypt; a file is read from the variable', async () => {
    expect(await loadKeyProviderConfig({})).toEqual({ providers: [] })
    expect(await loadKeyProviderConfig({ OCICRYPT_KEYPROVIDER_CONFIG: '/nonexistent/kp.json' })).toEqual({
      providers: [],
    })
    const dir = await mkdtemp(join(tmpdir(), 'coffer-kp-'))
    try {
      const path = join(dir, 'kp.json')
      await writeFile(path, '{"key-providers":{"x":{"grpc":"127.0.0.1:1"}}}')
      expect((await loadKeyProviderConfig({ OCICRYPT_KEYPROVIDER_CONFIG: path })).providers).toHaveLength(1)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a grpc-tls provider fails with ERR_CRYPT_UNSUPPORTED when used, not at load', async () => {
    const w = createProviderKeyWrapper({
      name: 'd',
      transport: { kind: 'unsupported', reason: 'grpc-tls is not supported yet' },
    })
    expect(await codeOf(w.wrapKeys({ 'provider.d': [Buffer.from('Enabled')] }, Buffer.from('x')))).toBe(
      'ERR_CRYPT_UNSUPPORTED',
    )
  })
})

describe('recipient strings (spec §2.2) and KEK parameters', () => {
  it('splits provider:<name>[:<params>] at the first colon after the name', () => {
    expect(parseProviderRecipient('provider:kms')).toEqual({
      name: 'kms',
      key: 'provider.kms',
      value: Buffer.from('Enabled'),
    })
    expect(parseProviderRecipient('provider:attestation-agent:keyid=kbs:///a/b/c::sample=true')).toEqual({
      name: 'attestation-agent',
      key: 'provider.attestation-agent',
      value: Buffer.from('keyid=kbs:///a/b/c::sample=true'),
    })
  })

  it.each(['jwe:x', 'provider:', 'provider::x'])('refuses %s', async (r) => {
    expect(await codeOf(() => parseProviderRecipient(r))).toBe('ERR_CRYPT_RECIPIENT_INVALID')
  })

  it('kid=<id> selects a KEK; Enabled selects none; anything else is refused', async () => {
    expect(kidFromParameter(Buffer.from('kid=a.b-c_1'))).toBe('a.b-c_1')
    expect(kidFromParameter(Buffer.from('Enabled'))).toBeUndefined()
    expect(await codeOf(() => kidFromParameter(Buffer.from('keypath=/etc/kek')))).toBe(
      'ERR_CRYPT_RECIPIENT_INVALID',
    )
    expect(await codeOf(() => kidFromParameter(Buffer.from('kid=../x')))).toBe('ERR_CRYPT_KEY_INVALID')
  })
})

describe('KEK JWE (kek-wrap.ts)', () => {
  const keyring = new Map([
    ['a', randomBytes(32)],
    ['b', randomBytes(32)],
  ])

  it('is General JSON with A256GCM content and one A256KW recipient per kid', async () => {
    const k = samplePrivateOptions()
    const wrapped = await wrapWithKeks(keyring, ['a', 'b', 'a'], k)
    const jwe = JSON.parse(wrapped.toString()) as {
      protected: string
      recipients: { header: { alg: string; kid: string } }[]
    }
    expect(JSON.parse(Buffer.from(jwe.protected, 'base64url').toString())).toEqual({ enc: 'A256GCM' })
    expect(jwe.recipients.map((r) => r.header)).toEqual([
      { alg: 'A256KW', kid: 'a' },
      { alg: 'A256KW', kid: 'b' },
    ])
    expect(await unwrapWithKeks(keyring, [], wrapped)).toEqual(k)
    expect(await unwrapWithKeks(keyring, ['b'], wrapped)).toEqual(k)
  })

  it('a KEK the keyring lacks is ERR_CRYPT_NO_KEY on wrap and the fixed failure on unwrap', async () => {
    expect(await codeOf(wrapWithKeks(keyring, ['zz'], Buffer.from('x')))).toBe('ERR_CRYPT_NO_KEY')
    const wrapped = await wrapWithKeks(keyring, ['a'], Buffer.from('x'))
    await expectDecryptFailed(unwrapWithKeks(keyring, ['zz'], wrapped))
    await expectDecryptFailed(unwrapWithKeks(new Map([['a', randomBytes(32)]]), [], wrapped))
    await expectDecryptFailed(unwrapWithKeks(keyring, [], Buffer.from('not json')))
  })

  it('loads KEKs raw or base64, named or default, and refuses other sizes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-kek-'))
    try {
      const raw = randomBytes(32)
      await writeFile(join(dir, 'raw'), raw)
      await writeFile(join(dir, 'b64'), `${raw.toString('base64')}\n`)
      await writeFile(join(dir, 'short'), randomBytes(16))
      const ring = await loadKeyring([join(dir, 'raw'), `x=${join(dir, 'b64')}`])
      expect(ring.get('default')).toEqual(raw)
      expect(ring.get('x')).toEqual(raw)
      expect(await codeOf(loadKeyring([join(dir, 'short')]))).toBe('ERR_CRYPT_KEY_INVALID')
      expect(await codeOf(loadKeyring([join(dir, 'raw'), join(dir, 'b64')]))).toBe('ERR_USAGE')
      expect(await codeOf(loadKeyring([join(dir, 'missing')]))).toBe('ERR_NOT_FOUND')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('the server answers only its own parameters, and says which names it got instead', async () => {
    const server = { name: 'coffer', handler: createKekKeyProvider(keyring) }
    const req = encodeProviderRequest({
      op: 'keywrap',
      parameters: { other: [Buffer.from('kid=a')] },
      optsdata: Buffer.from('x'),
    })
    await expect(handleKeyProviderRequest(server, req)).rejects.toThrow(
      /no parameters for provider "coffer".*other/,
    )
  })
})

describe('coffer keyprovider server transports', () => {
  const server = { name: 'coffer', handler: createKekKeyProvider(new Map([['default', randomBytes(32)]])) }

  it('cmd mode: a client that never closes stdin gets ERR_CRYPT_PROVIDER_TIMEOUT', async () => {
    const stdin = new PassThrough()
    stdin.write('{"op":"keywrap"')
    const t0 = Date.now()
    expect(
      await codeOf(serveKeyProviderCmd(server, { stdin, stdout: new PassThrough(), timeoutMs: 200 })),
    ).toBe('ERR_CRYPT_PROVIDER_TIMEOUT')
    expect(Date.now() - t0).toBeLessThan(2_000)
  })

  it('cmd mode: one request in, one response out', async () => {
    const stdin = new PassThrough()
    const stdout = new PassThrough()
    stdin.end(
      encodeProviderRequest({
        op: 'keywrap',
        parameters: { coffer: [Buffer.from('Enabled')] },
        optsdata: Buffer.from('k'),
      }),
    )
    await serveKeyProviderCmd(server, { stdin, stdout })
    const annotation = parseProviderResponse(stdout.read() as Buffer, 'keywrap', 'coffer')
    expect(JSON.parse(annotation.toString()).recipients[0].header.kid).toBe('default')
  })

  it('--grpc PORT listens on loopback; HOST:PORT as given', () => {
    expect(grpcListenAddress('50000')).toBe('127.0.0.1:50000')
    expect(grpcListenAddress('0.0.0.0:50000')).toBe('0.0.0.0:50000')
  })
})

describe('keyprovider.proto', () => {
  it('the embedded JSON definition matches the proto text', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-proto-'))
    try {
      const file = join(dir, 'keyprovider.proto')
      await writeFile(file, KEYPROVIDER_PROTO)
      const fromText = protoLoader.loadSync(file, PROTO_LOADER_OPTIONS)
      const fromJson = protoLoader.fromJSON(KEYPROVIDER_PROTO_JSON, PROTO_LOADER_OPTIONS)
      const shape = (def: protoLoader.PackageDefinition) => {
        const svc = def['keyprovider.KeyProviderService'] as protoLoader.ServiceDefinition
        return Object.fromEntries(
          Object.entries(svc).map(([m, d]) => [
            m,
            { path: d.path, req: d.requestType.type, res: d.responseType.type },
          ]),
        )
      }
      expect(shape(fromJson)).toEqual(shape(fromText))
      expect(Object.keys(shape(fromJson))).toEqual(['WrapKey', 'UnWrapKey'])
      expect(shape(fromJson).WrapKey?.path).toBe('/keyprovider.KeyProviderService/WrapKey')
      expect(shape(fromJson).UnWrapKey?.path).toBe('/keyprovider.KeyProviderService/UnWrapKey')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

// === conformance: the provider wrapper against a real gRPC `coffer keyprovider` in this process
let running: RunningGrpcServer | undefined
const keks = new Map([
  ['a', randomBytes(32)],
  ['b', randomBytes(32)],
  ['c', randomBytes(32)],
])
beforeAll(async () => {
  running = await startKeyProviderGrpcServer(
    { name: 'unit', handler: createKekKeyProvider(keks) },
    '127.0.0.1:0',
  )
})
afterAll(async () => {
  await running?.close()
})

const param = (kid: string) => ({ 'provider.unit': [Buffer.from(`kid=${kid}`)] })
keyWrapperSuite('provider (gRPC, in-process coffer keyprovider)', async () => ({
  wrapper: createProviderKeyWrapper({ name: 'unit', transport: { kind: 'grpc', address: running!.address } }),
  recipients: [
    { ec: param('a'), dc: param('a') },
    { ec: param('b'), dc: param('b') },
  ],
  unrelated: param('c'),
  tamper: tamperKekJwe,
}))

describe('provider wrapper over gRPC', () => {
  it('unwrap with provider:<name> alone (Enabled) uses the KEK the annotation names', async () => {
    const w = createProviderKeyWrapper({
      name: 'unit',
      transport: { kind: 'grpc', address: running!.address },
    })
    const k = samplePrivateOptions()
    const wrapped = await w.wrapKeys(param('b'), k)
    expect(Buffer.from(await w.unwrapKey({ 'provider.unit': [Buffer.from('Enabled')] }, wrapped))).toEqual(k)
  })

  it('a wrap error comes back with the server’s code and message', async () => {
    const w = createProviderKeyWrapper({
      name: 'unit',
      transport: { kind: 'grpc', address: running!.address },
    })
    await expect(w.wrapKeys(param('nope'), Buffer.from('x'))).rejects.toMatchObject({
      code: 'ERR_CRYPT_PROVIDER_FAILED',
      message: expect.stringContaining('no KEK "nope" [ERR_CRYPT_NO_KEY]'),
    })
  })

  it('garbage in the request field is INVALID_ARGUMENT with the coded reason', async () => {
    const def = protoLoader.fromJSON(KEYPROVIDER_PROTO_JSON, PROTO_LOADER_OPTIONS)
    const pkg = grpc.loadPackageDefinition(def).keyprovider as grpc.GrpcObject
    const Client = pkg.KeyProviderService as grpc.ServiceClientConstructor
    const client = new Client(running!.address, grpc.credentials.createInsecure())
    try {
      const err = await new Promise<grpc.ServiceError>((resolve) =>
        (client.UnWrapKey as CallUnary).call(
          client,
          { KeyProviderKeyWrapProtocolInput: Buffer.from('{{{') },
          (e: grpc.ServiceError) => resolve(e),
        ),
      )
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT)
      expect(err.details).toContain('ERR_CRYPT_PROVIDER_REQUEST_INVALID')
    } finally {
      client.close()
    }
  })

  it('a closed port is ERR_CRYPT_PROVIDER_FAILED', async () => {
    const probe = await startKeyProviderGrpcServer(
      { name: 'x', handler: createKekKeyProvider(keks) },
      '127.0.0.1:0',
    )
    const address = probe.address
    await probe.close()
    const w = createProviderKeyWrapper({ name: 'x', transport: { kind: 'grpc', address } })
    expect(await codeOf(w.wrapKeys({ 'provider.x': [Buffer.from('kid=a')] }, Buffer.from('x')))).toBe(
      'ERR_CRYPT_PROVIDER_FAILED',
    )
  })

  it('a server that never answers is ERR_CRYPT_PROVIDER_TIMEOUT within the limit', async () => {
    const hang = new grpc.Server()
    const def = protoLoader.fromJSON(KEYPROVIDER_PROTO_JSON, PROTO_LOADER_OPTIONS)
    const svc = def['keyprovider.KeyProviderService'] as grpc.ServiceDefinition
    hang.addService(svc, { WrapKey: () => {}, UnWrapKey: () => {} })
    const port = await new Promise<number>((resolve, reject) =>
      hang.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    )
    try {
      const w = createProviderKeyWrapper(
        { name: 'h', transport: { kind: 'grpc', address: `127.0.0.1:${port}` } },
        { timeoutMs: 300 },
      )
      const t0 = Date.now()
      expect(await codeOf(w.unwrapKey({ 'provider.h': [Buffer.from('Enabled')] }, Buffer.from('x')))).toBe(
        'ERR_CRYPT_PROVIDER_TIMEOUT',
      )
      expect(Date.now() - t0).toBeLessThan(3_000)
    } finally {
      hang.forceShutdown()
    }
  })
})
