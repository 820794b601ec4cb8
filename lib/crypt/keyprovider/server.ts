/**
 * The provider side of the keyprovider protocol, as `coffer keyprovider` serves it: a handler that
 * wraps and unwraps with local KEKs (kek-wrap.ts), behind either transport ocicrypt speaks.
 *
 * - cmd mode (`serveKeyProviderCmd`): one request JSON on stdin, one response JSON on stdout; the
 *   process then exits. Errors go to stderr and the exit status (the caller, cli/run.ts).
 * - gRPC mode (`startKeyProviderGrpcServer`, grpc-server.ts, kept apart so cmd mode never loads
 *   grpc-js): `keyprovider.KeyProviderService` on a TCP address, plaintext, 127.0.0.1 unless told
 *   otherwise; errors become gRPC statuses by error class.
 *
 * The server reads only `Parameters[<name>]`: the entry for the name it serves under (`--name`,
 * default `coffer`, which must match the client's `key-providers` key). ocicrypt also sends the
 * user's other parameters and, in `ec.DecryptConfig`, private keys (spec §2.5); those are never
 * looked at.
 */
import type { Readable, Writable } from 'node:stream'
import { readFile } from 'node:fs/promises'
import { CofferError } from '../../util/errors.js'
import { readAllLimited, throwIfAborted, type Io } from '../../util/io.js'
import {
  checkKid,
  DEFAULT_KID,
  KEK_BYTES,
  kidFromParameter,
  unwrapWithKeks,
  wrapWithKeks,
  type Keyring,
} from './kek-wrap.js'
import { DEFAULT_PROVIDER_TIMEOUT_MS, MAX_KEK_FILE_BYTES, MAX_PROVIDER_MESSAGE_BYTES } from './limits.js'
import {
  encodeProviderResponse,
  OP_KEYUNWRAP,
  OP_KEYWRAP,
  parseProviderRequest,
  type ProviderOp,
} from './protocol.js'

/** The name `coffer keyprovider` serves under unless `--name` says otherwise. */
export const DEFAULT_PROVIDER_NAME = 'coffer'

/**
 * What a provider does with its own parameters (`Parameters[<name>]`). The seam for other key
 * sources: the KBS variant implements this with KEKs fetched from the KBS.
 */
export interface KeyProviderHandler {
  /** Returns the annotation bytes for `optsdata`; `params` are this provider's recipients. */
  wrapKey(params: readonly Uint8Array[], optsdata: Uint8Array, o?: Io): Promise<Uint8Array>
  /** Returns the private options; failures to decrypt are ERR_CRYPT_DECRYPT_FAILED. */
  unwrapKey(params: readonly Uint8Array[], annotation: Uint8Array, o?: Io): Promise<Uint8Array>
}

export interface KeyProviderServer {
  /** The `key-providers` name clients use for this provider. */
  name: string
  handler: KeyProviderHandler
}

/** A handler wrapping with the KEKs in `keyring` (format: kek-wrap.ts). */
export function createKekKeyProvider(keyring: Keyring): KeyProviderHandler {
  return {
    async wrapKey(params, optsdata, o = {}) {
      throwIfAborted(o.signal)
      const kids = params.map((p) => kidFromParameter(p) ?? DEFAULT_KID)
      return wrapWithKeks(keyring, kids, optsdata)
    },
    async unwrapKey(params, annotation, o = {}) {
      throwIfAborted(o.signal)
      return unwrapWithKeks(keyring, params.map(kidFromParameter), annotation)
    },
  }
}

/**
 * Loads KEKs from `--kek [ID=]FILE` values: each file holds 32 raw bytes or their base64. A value
 * whose part before `=` is a valid key id names the KEK; otherwise the whole value is the file
 * and the KEK is `default`. A repeated id is ERR_USAGE.
 */
export async function loadKeyring(specs: readonly string[]): Promise<Keyring> {
  const keyring = new Map<string, Uint8Array>()
  for (const spec of specs) {
    const eq = spec.indexOf('=')
    const named = eq > 0 && /^[A-Za-z0-9._-]{1,64}$/.test(spec.slice(0, eq))
    const kid = named ? checkKid(spec.slice(0, eq), '--kek') : DEFAULT_KID
    const path = named ? spec.slice(eq + 1) : spec
    if (keyring.has(kid)) throw new CofferError('ERR_USAGE', `--kek: key id "${kid}" is given twice`)
    keyring.set(kid, await readKek(path))
  }
  return keyring
}

async function readKek(path: string): Promise<Uint8Array> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    throw new CofferError(
      'ERR_NOT_FOUND',
      `--kek: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
    )
  }
  if (bytes.length === KEK_BYTES) return bytes
  if (bytes.length <= MAX_KEK_FILE_BYTES) {
    const text = bytes.toString('utf8').trim()
    if (/^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
      const decoded = Buffer.from(text, 'base64')
      if (decoded.length === KEK_BYTES) return decoded
    }
  }
  // The message never shows the file's content.
  throw new CofferError('ERR_CRYPT_KEY_INVALID', `--kek ${path}: not 32 bytes, raw or base64`)
}

/**
 * Answers one protocol message: parse, dispatch on `op`, encode. Throws CofferErrors with the
 * request's fault (ERR_CRYPT_PROVIDER_REQUEST_INVALID, ERR_CRYPT_NO_KEY, ERR_CRYPT_DECRYPT_FAILED…).
 */
export async function handleKeyProviderRequest(
  server: KeyProviderServer,
  body: Uint8Array,
  o: Io & { expectedOp?: ProviderOp } = {},
): Promise<Buffer> {
  const req = parseProviderRequest(body, o.expectedOp)
  const params = req.parameters[server.name] ?? []
  if (req.op === OP_KEYWRAP) {
    if (params.length === 0) {
      const sent = Object.keys(req.parameters)
      throw new CofferError(
        'ERR_CRYPT_NO_KEY',
        `the keywrap request has no parameters for provider "${server.name}"` +
          (sent.length ? ` (it has: ${sent.slice(0, 5).join(', ')}); serve under that name with --name` : ''),
      )
    }
    return encodeProviderResponse(OP_KEYWRAP, await server.handler.wrapKey(params, req.optsdata, o))
  }
  return encodeProviderResponse(OP_KEYUNWRAP, await server.handler.unwrapKey(params, req.annotation, o))
}

/**
 * cmd mode: reads one request from `stdin` (bounded in size, and in time by `timeoutMs`, so a
 * client that never closes stdin cannot hold the process), writes the response to `stdout`.
 */
export async function serveKeyProviderCmd(
  server: KeyProviderServer,
  io: Io & { stdin: Readable; stdout: Writable; timeoutMs?: number },
): Promise<void> {
  const timeoutMs = io.timeoutMs ?? DEFAULT_PROVIDER_TIMEOUT_MS
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      io.stdin.destroy()
      reject(
        new CofferError('ERR_CRYPT_PROVIDER_TIMEOUT', `no complete request on stdin within ${timeoutMs} ms`),
      )
    }, timeoutMs)
  })
  let body: Buffer
  try {
    body = await Promise.race([
      readAllLimited(
        io.stdin,
        MAX_PROVIDER_MESSAGE_BYTES,
        'the keyprovider request',
        'ERR_CRYPT_PROVIDER_REQUEST_INVALID',
      ),
      timeout,
    ])
  } finally {
    clearTimeout(timer)
  }
  const response = await handleKeyProviderRequest(server, body, io)
  await new Promise<void>((resolve, reject) =>
    io.stdout.write(response, (err) => (err ? reject(err) : resolve())),
  )
}
