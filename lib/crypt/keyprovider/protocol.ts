/**
 * The ocicrypt keyprovider wire format (spec §2.3; ocicrypt `keywrap/keyprovider/keyprovider.go`):
 * one JSON object in, one JSON object out, the same bytes over a cmd provider's stdin/stdout and
 * inside the single `bytes` field of the gRPC messages.
 *
 * Field names and shapes are Go encoding/json's for ocicrypt's structs: `[]byte` is standard
 * base64, a nil slice or pointer is `null`, and `keyunwrapparams` is present even on keywrap.
 * Readers accept `[]byte` as base64 *or* as a JSON array of byte values, as Go does, because
 * ocicrypt-rs and CoCo's CDH only speak the array form (spec §2.3). Writers use base64 for
 * requests (what Go providers and coco_keyprovider expect) and arrays for responses (what every
 * known client accepts).
 *
 * §2.5: ocicrypt puts the user's whole DecryptConfig, private keys included, into requests.
 * `encodeProviderRequest` takes only the one provider's parameters, so it cannot.
 */
import { z } from 'zod'
import { CofferError } from '../../util/errors.js'
import { MAX_PROVIDER_MESSAGE_BYTES } from './limits.js'

export const OP_KEYWRAP = 'keywrap'
export const OP_KEYUNWRAP = 'keyunwrap'
export type ProviderOp = typeof OP_KEYWRAP | typeof OP_KEYUNWRAP

/** Go's `base64.StdEncoding`: padded, no whitespace, no URL alphabet. */
const BASE64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** A Go `[]byte`: base64 string or array of byte values; decoded to a Buffer. */
export const bytesSchema = z
  .union([z.string().regex(BASE64_STD, 'not standard base64'), z.array(z.number().int().min(0).max(255))])
  .transform((v) => (typeof v === 'string' ? Buffer.from(v, 'base64') : Buffer.from(v)))

/** ocicrypt `Parameters map[string][][]byte`; a nil map or entry is null. */
export const parametersSchema = z.record(z.string(), z.array(bytesSchema).nullable()).nullable()

/** ocicrypt `config.DecryptConfig` (only `Parameters` crosses the wire). */
export const decryptConfigSchema = z.looseObject({ Parameters: parametersSchema.optional() })

/** ocicrypt `config.EncryptConfig`: `DecryptConfig` is a struct, so Go always writes it. */
export const encryptConfigSchema = z.looseObject({
  Parameters: parametersSchema.optional(),
  DecryptConfig: decryptConfigSchema.nullable().optional(),
})

/** `KeyProviderKeyWrapProtocolInput`. Unknown members pass, as in Go. */
export const providerInputSchema = z.looseObject({
  op: z.enum([OP_KEYWRAP, OP_KEYUNWRAP]),
  keywrapparams: z
    .looseObject({
      ec: encryptConfigSchema.nullable().optional(),
      optsdata: bytesSchema.nullable().optional(),
    })
    .nullable()
    .optional(),
  keyunwrapparams: z
    .looseObject({
      dc: decryptConfigSchema.nullable().optional(),
      annotation: bytesSchema.nullable().optional(),
    })
    .nullable()
    .optional(),
})

/** `KeyProviderKeyWrapProtocolOutput`: one of the two results, by op. */
export const providerOutputSchema = z.looseObject({
  keywrapresults: z.looseObject({ annotation: bytesSchema.nullable().optional() }).nullable().optional(),
  keyunwrapresults: z.looseObject({ optsdata: bytesSchema.nullable().optional() }).nullable().optional(),
})

/** A decoded request, as a provider (our server) sees it. */
export type ProviderRequest =
  | {
      op: typeof OP_KEYWRAP
      /** `ec.Parameters`; `ec.DecryptConfig` is dropped on purpose (§2.5). */
      parameters: Record<string, Buffer[]>
      optsdata: Buffer
    }
  | {
      op: typeof OP_KEYUNWRAP
      /** `dc.Parameters`. */
      parameters: Record<string, Buffer[]>
      annotation: Buffer
    }

/** How a writer encodes `[]byte`: see the module doc. */
export type BytesEncoding = 'base64' | 'array'

function encodeBytes(b: Uint8Array, enc: BytesEncoding): string | number[] {
  return enc === 'base64' ? Buffer.from(b).toString('base64') : Array.from(b)
}

function encodeParameters(p: Record<string, readonly Uint8Array[]>): Record<string, string[]> {
  return Object.fromEntries(
    Object.entries(p).map(([k, v]) => [k, v.map((b) => Buffer.from(b).toString('base64'))]),
  )
}

/**
 * The request a client sends, in ocicrypt's exact shape, carrying only `parameters` (the one
 * provider's own entry, keyed by its name). Never pass a whole Encrypt/DecryptConfig here.
 */
export function encodeProviderRequest(
  req:
    | { op: typeof OP_KEYWRAP; parameters: Record<string, readonly Uint8Array[]>; optsdata: Uint8Array }
    | { op: typeof OP_KEYUNWRAP; parameters: Record<string, readonly Uint8Array[]>; annotation: Uint8Array },
): Buffer {
  const body =
    req.op === OP_KEYWRAP
      ? {
          op: req.op,
          keywrapparams: {
            ec: { Parameters: encodeParameters(req.parameters), DecryptConfig: { Parameters: {} } },
            optsdata: encodeBytes(req.optsdata, 'base64'),
          },
          keyunwrapparams: { dc: null, annotation: null },
        }
      : {
          op: req.op,
          keywrapparams: { ec: null, optsdata: null },
          keyunwrapparams: {
            dc: { Parameters: encodeParameters(req.parameters) },
            annotation: encodeBytes(req.annotation, 'base64'),
          },
        }
  return Buffer.from(JSON.stringify(body))
}

/** The response a provider writes: arrays by default, which Go, Rust and coffer all read. */
export function encodeProviderResponse(
  op: ProviderOp,
  data: Uint8Array,
  enc: BytesEncoding = 'array',
): Buffer {
  const body =
    op === OP_KEYWRAP
      ? { keywrapresults: { annotation: encodeBytes(data, enc) } }
      : { keyunwrapresults: { optsdata: encodeBytes(data, enc) } }
  return Buffer.from(JSON.stringify(body))
}

/** Parses JSON from an untrusted peer, bounded; `code` says whose fault a failure is. */
function parseJson(
  bytes: Uint8Array,
  what: string,
  code: 'ERR_CRYPT_PROVIDER_PROTOCOL' | 'ERR_CRYPT_PROVIDER_REQUEST_INVALID',
): unknown {
  if (bytes.byteLength > MAX_PROVIDER_MESSAGE_BYTES)
    throw new CofferError(code, `${what} is larger than the ${MAX_PROVIDER_MESSAGE_BYTES}-byte limit`)
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    throw new CofferError(code, `${what} is not JSON`)
  }
}

function issuesOf(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ')
}

function parameterRecord(p: z.infer<typeof parametersSchema> | undefined): Record<string, Buffer[]> {
  const out: Record<string, Buffer[]> = {}
  for (const [k, v] of Object.entries(p ?? {})) out[k] = v ?? []
  return out
}

/**
 * Decodes a request, as a provider. A request that is not the protocol, or lacks the data its op
 * needs, is ERR_CRYPT_PROVIDER_REQUEST_INVALID. `expectedOp` is the gRPC method's op.
 */
export function parseProviderRequest(bytes: Uint8Array, expectedOp?: ProviderOp): ProviderRequest {
  const what = 'the keyprovider request'
  const parsed = providerInputSchema.safeParse(parseJson(bytes, what, 'ERR_CRYPT_PROVIDER_REQUEST_INVALID'))
  if (!parsed.success)
    throw new CofferError(
      'ERR_CRYPT_PROVIDER_REQUEST_INVALID',
      `${what} is malformed: ${issuesOf(parsed.error)}`,
    )
  const input = parsed.data
  if (expectedOp && input.op !== expectedOp)
    throw new CofferError(
      'ERR_CRYPT_PROVIDER_REQUEST_INVALID',
      `${what} has op "${input.op}", not "${expectedOp}"`,
    )
  if (input.op === OP_KEYWRAP) {
    const optsdata = input.keywrapparams?.optsdata
    if (!optsdata || optsdata.length === 0)
      throw new CofferError('ERR_CRYPT_PROVIDER_REQUEST_INVALID', `${what} has no keywrapparams.optsdata`)
    return { op: OP_KEYWRAP, parameters: parameterRecord(input.keywrapparams?.ec?.Parameters), optsdata }
  }
  const annotation = input.keyunwrapparams?.annotation
  if (!annotation || annotation.length === 0)
    throw new CofferError('ERR_CRYPT_PROVIDER_REQUEST_INVALID', `${what} has no keyunwrapparams.annotation`)
  return { op: OP_KEYUNWRAP, parameters: parameterRecord(input.keyunwrapparams?.dc?.Parameters), annotation }
}

/**
 * Decodes a provider's response to `op`, as a client: the annotation for keywrap, the private
 * options for keyunwrap. Anything else is ERR_CRYPT_PROVIDER_PROTOCOL naming `provider`.
 * An empty result comes back empty; the caller decides what that means.
 */
export function parseProviderResponse(bytes: Uint8Array, op: ProviderOp, provider: string): Buffer {
  const what = `the response of key provider "${provider}"`
  const parsed = providerOutputSchema.safeParse(parseJson(bytes, what, 'ERR_CRYPT_PROVIDER_PROTOCOL'))
  if (!parsed.success)
    throw new CofferError('ERR_CRYPT_PROVIDER_PROTOCOL', `${what} is malformed: ${issuesOf(parsed.error)}`)
  const result =
    op === OP_KEYWRAP ? parsed.data.keywrapresults?.annotation : parsed.data.keyunwrapresults?.optsdata
  if (result === undefined)
    throw new CofferError(
      'ERR_CRYPT_PROVIDER_PROTOCOL',
      `${what} has no ${op === OP_KEYWRAP ? 'keywrapresults.annotation' : 'keyunwrapresults.optsdata'}`,
    )
  return result ?? Buffer.alloc(0)
}
