/**
 * ocicrypt's keyprovider key wrapper (`keywrap/keyprovider/keyprovider.go`, spec §2): one
 * KeyWrapper per provider in `OCICRYPT_KEYPROVIDER_CONFIG`, named `provider.<name>`, writing the
 * annotation `org.opencontainers.image.enc.keys.provider.<name>`.
 *
 * EncryptConfig / DecryptConfig convention: the recipient `provider:<name>[:<params>]` (on
 * `--encryption-key` or `--decryption-key`) becomes `ec['provider.<name>']` (or `dc[…]`), one entry
 * per flag, holding `<params>` as bytes, or `Enabled` when none were given (`parseProviderRecipient`).
 * On the wire that list is sent as ocicrypt's `Parameters[<name>]`.
 *
 * Unlike ocicrypt (spec §2.5), a provider is sent **only its own entry**: never private keys,
 * passwords or other recipients' parameters. And it is asked to unwrap only when the user named it
 * (`noPossibleKeys` is true otherwise), never just because its annotation is on the layer.
 *
 * Failures: a provider that cannot be run or reached is ERR_CRYPT_PROVIDER_FAILED, one that does
 * not answer in time ERR_CRYPT_PROVIDER_TIMEOUT, one that answers something other than the
 * protocol ERR_CRYPT_PROVIDER_PROTOCOL. A provider that answers "no" to an unwrap (non-zero exit,
 * or a non-transport gRPC status) is the fixed ERR_CRYPT_DECRYPT_FAILED, like any wrong key; on
 * wrap it is ERR_CRYPT_PROVIDER_FAILED with the provider's message.
 */
import type { DecryptConfig, EncryptConfig, KeyWrapper } from '../../../lib/crypt/keywrap.js'
import { ENC_KEYS_ANNOTATION_PREFIX } from '../../../lib/crypt/keywrap.js'
import { callCmdProvider, type ProviderReply } from '../../../lib/crypt/keyprovider/cmd-client.js'
import type { KeyProviderConfig, KeyProviderEntry } from '../../../lib/crypt/keyprovider/config.js'
import { DEFAULT_PROVIDER_TIMEOUT_MS } from '../../../lib/crypt/keyprovider/limits.js'
import {
  encodeProviderRequest,
  OP_KEYUNWRAP,
  OP_KEYWRAP,
  parseProviderResponse,
  type ProviderOp,
} from '../../../lib/crypt/keyprovider/protocol.js'
import { CofferError } from '../../../lib/util/errors.js'
import { throwIfAborted, type Io } from '../../../lib/util/io.js'
import { decryptFailed } from '../../../lib/crypt/decrypt-failed.js'

/** `provider.<name>`: the wrapper's name and its EncryptConfig/DecryptConfig key. */
export const providerSchemeName = (name: string): string => `provider.${name}`
/** `org.opencontainers.image.enc.keys.provider.<name>`. */
export const providerAnnotation = (name: string): string => `${ENC_KEYS_ANNOTATION_PREFIX}provider.${name}`

/** What `provider:<name>` without parameters stands for (ocicrypt `config/constructors.go`). */
const ENABLED = 'Enabled'

export interface ProviderKeyWrapperOptions {
  /** Deadline for one provider call, spawn to exit or gRPC deadline (default 10 s). */
  timeoutMs?: number
}

/**
 * `provider:<name>[:<params>]` → the config key and the one parameter entry it adds. The split is
 * at the first `:` after the name, so `<params>` may contain `:` (spec §2.2). For the CLI's
 * `--encryption-key` / `--decryption-key` parsing: `(cfg[key] ??= []).push(value)`.
 */
export function parseProviderRecipient(recipient: string): { name: string; key: string; value: Buffer } {
  if (!recipient.startsWith('provider:'))
    throw new CofferError('ERR_CRYPT_RECIPIENT_INVALID', `"${recipient}" is not provider:<name>[:<params>]`)
  const rest = recipient.slice('provider:'.length)
  const colon = rest.indexOf(':')
  const name = colon < 0 ? rest : rest.slice(0, colon)
  if (!name)
    throw new CofferError(
      'ERR_CRYPT_RECIPIENT_INVALID',
      `"${recipient}" names no provider: provider:<name>[:<params>]`,
    )
  const params = colon < 0 ? ENABLED : rest.slice(colon + 1)
  return { name, key: providerSchemeName(name), value: Buffer.from(params) }
}

class ProviderKeyWrapper implements KeyWrapper {
  readonly name: string
  readonly annotationId: string
  readonly #entry: KeyProviderEntry
  readonly #timeoutMs: number

  constructor(entry: KeyProviderEntry, o: ProviderKeyWrapperOptions) {
    this.#entry = entry
    this.#timeoutMs = o.timeoutMs ?? DEFAULT_PROVIDER_TIMEOUT_MS
    this.name = providerSchemeName(entry.name)
    this.annotationId = providerAnnotation(entry.name)
  }

  hasRecipients(ec: EncryptConfig): boolean {
    return (ec[this.name]?.length ?? 0) > 0
  }

  /** True unless the user named this provider for decryption (spec §2.5). */
  noPossibleKeys(dc: DecryptConfig): boolean {
    return (dc[this.name]?.length ?? 0) === 0
  }

  async wrapKeys(ec: EncryptConfig, privateOptions: Uint8Array, o: Io = {}): Promise<Uint8Array> {
    const params = ec[this.name] ?? []
    if (params.length === 0)
      throw new CofferError('ERR_CRYPT_NO_KEY', `${this.name}: no recipient to wrap for`)
    const request = encodeProviderRequest({
      op: OP_KEYWRAP,
      parameters: { [this.#entry.name]: params },
      optsdata: privateOptions,
    })
    const reply = await this.#call(OP_KEYWRAP, request, o)
    if (!reply.ok)
      throw new CofferError(
        'ERR_CRYPT_PROVIDER_FAILED',
        `key provider "${this.#entry.name}" failed to wrap: ${reply.detail}`,
      )
    const annotation = parseProviderResponse(reply.body, OP_KEYWRAP, this.#entry.name)
    // ocicrypt drops the annotation then; we refuse, so a layer is never encrypted for nobody.
    if (annotation.length === 0)
      throw new CofferError('ERR_CRYPT_NO_KEY', `key provider "${this.#entry.name}" wrapped for no recipient`)
    return annotation
  }

  async unwrapKey(dc: DecryptConfig, wrapped: Uint8Array, o: Io = {}): Promise<Uint8Array> {
    const request = encodeProviderRequest({
      op: OP_KEYUNWRAP,
      parameters: { [this.#entry.name]: dc[this.name] ?? [] },
      annotation: wrapped,
    })
    const reply = await this.#call(OP_KEYUNWRAP, request, o)
    // A refusal says no more than a wrong key would (STYLE §6).
    if (!reply.ok) throw decryptFailed()
    const optsdata = parseProviderResponse(reply.body, OP_KEYUNWRAP, this.#entry.name)
    if (optsdata.length === 0)
      throw new CofferError(
        'ERR_CRYPT_PROVIDER_PROTOCOL',
        `key provider "${this.#entry.name}" returned empty private options`,
      )
    return optsdata
  }

  #call(op: ProviderOp, request: Buffer, o: Io): Promise<ProviderReply> {
    throwIfAborted(o.signal)
    const t = this.#entry.transport
    const callOptions = { provider: this.#entry.name, timeoutMs: this.#timeoutMs, signal: o.signal }
    switch (t.kind) {
      case 'cmd':
        return callCmdProvider(t, request, callOptions)
      case 'grpc':
        // Loaded on first use: most runs have no gRPC provider and need not load grpc-js.
        return import('../../../lib/crypt/keyprovider/grpc-client.js').then((m) =>
          m.callGrpcProvider(t.address, op, request, callOptions),
        )
      case 'unsupported':
        throw new CofferError('ERR_CRYPT_UNSUPPORTED', `key provider "${this.#entry.name}": ${t.reason}`)
    }
  }
}

/** A KeyWrapper for one configured provider. Stateless apart from its config; safe to share. */
export function createProviderKeyWrapper(
  entry: KeyProviderEntry,
  o: ProviderKeyWrapperOptions = {},
): KeyWrapper {
  return new ProviderKeyWrapper(entry, o)
}

/** One KeyWrapper per provider in `config`, in the config's order. */
export function createProviderKeyWrappers(
  config: KeyProviderConfig,
  o: ProviderKeyWrapperOptions = {},
): KeyWrapper[] {
  return config.providers.map((entry) => createProviderKeyWrapper(entry, o))
}
