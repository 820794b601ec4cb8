/**
 * The conformance suite every KeyWrapper runs (STYLE §14, like containerd's `ContentSuite`): the
 * round trip for one and for several recipients, the one fixed failure for wrong keys and tampered
 * output, and the key-presence checks the unwrap loop relies on (lib/crypt/key-wrapping.ts).
 *
 * A wrapper's test file calls `keyWrapperSuite(name, makeFixture)` once per key type it supports.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DecryptConfig, EncryptConfig, KeyWrapper } from '../../lib/crypt/keywrap.js'
import { CofferError } from '../../lib/util/errors.js'

/** One recipient: the config that encrypts for it alone, and the one that holds its key alone. */
export interface KeyWrapperRecipient {
  ec: EncryptConfig
  /** Use the same parameter names in every `dc` (e.g. always `privkeys` and `privkeysPasswords`), so configs merge by concatenation. */
  dc: DecryptConfig
}

export interface KeyWrapperFixture {
  wrapper: KeyWrapper
  /** Two or more distinct recipients. */
  recipients: KeyWrapperRecipient[]
  /** Keys of the wrapper's kind that belong to no recipient. */
  unrelated: DecryptConfig
  /**
   * Copies of `wrapped` (made for one recipient) with one cryptographic part changed each:
   * ciphertext, tag, wrapped key, integrity-protected header. Each must fail to unwrap.
   */
  tamper(wrapped: Uint8Array): Uint8Array[]
  close?(): Promise<void>
}

/** Private options as ocicrypt marshals them (spec §1.4): what every wrapper carries in practice. */
export function samplePrivateOptions(): Buffer {
  const symkey = randomBytes(32).toString('base64')
  const nonce = randomBytes(16).toString('base64')
  const digest = `sha256:${randomBytes(32).toString('hex')}`
  return Buffer.from(`{"symkey":"${symkey}","digest":"${digest}","cipheroptions":{"nonce":"${nonce}"}}`)
}

/** Concatenates configs parameter by parameter (ocicrypt `CombineCryptoConfigs`). */
export function mergeConfigs<T extends EncryptConfig | DecryptConfig>(...configs: T[]): T {
  const out: Record<string, Uint8Array[]> = {}
  for (const c of configs) {
    for (const [name, values] of Object.entries(c)) if (values) (out[name] ??= []).push(...values)
  }
  return out as T
}

/** The failure STYLE §6 allows for any crypto problem: fixed code, fixed message, no cause. */
export async function expectDecryptFailed(p: Promise<unknown>): Promise<void> {
  const err = await p.then(
    () => new Error('expected the unwrap to fail'),
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(CofferError)
  expect((err as CofferError).code).toBe('ERR_CRYPT_DECRYPT_FAILED')
  expect((err as CofferError).message).toBe('decryption failed')
  expect((err as CofferError).cause).toBeUndefined()
}

export function keyWrapperSuite(name: string, makeFixture: () => Promise<KeyWrapperFixture>): void {
  describe(`keywrap conformance: ${name}`, () => {
    let f: KeyWrapperFixture
    const k = samplePrivateOptions()
    beforeAll(async () => {
      f = await makeFixture()
      expect(f.recipients.length).toBeGreaterThanOrEqual(2)
    })
    afterAll(async () => {
      await f?.close?.()
    })
    const first = (): KeyWrapperRecipient => f.recipients[0]!
    const all = (): EncryptConfig => mergeConfigs(...f.recipients.map((r) => r.ec))

    it('unwrapKey(wrapKeys(k)) returns k for one recipient', async () => {
      const wrapped = await f.wrapper.wrapKeys(first().ec, k)
      expect(Buffer.from(await f.wrapper.unwrapKey(first().dc, wrapped))).toEqual(k)
    })

    it('unwrapKey(wrapKeys(k)) returns k to each of several recipients, and to all keys at once', async () => {
      const wrapped = await f.wrapper.wrapKeys(all(), k)
      for (const r of f.recipients) expect(Buffer.from(await f.wrapper.unwrapKey(r.dc, wrapped))).toEqual(k)
      const everyKey = mergeConfigs(...f.recipients.map((r) => r.dc))
      expect(Buffer.from(await f.wrapper.unwrapKey(everyKey, wrapped))).toEqual(k)
    })

    it('a wrong key throws ERR_CRYPT_DECRYPT_FAILED "decryption failed"', async () => {
      await expectDecryptFailed(f.wrapper.unwrapKey(f.unrelated, await f.wrapper.wrapKeys(first().ec, k)))
      await expectDecryptFailed(f.wrapper.unwrapKey(f.unrelated, await f.wrapper.wrapKeys(all(), k)))
      // The key of another recipient is a wrong key too.
      const second = f.recipients[1]!
      await expectDecryptFailed(f.wrapper.unwrapKey(second.dc, await f.wrapper.wrapKeys(first().ec, k)))
    })

    it('tampered output throws ERR_CRYPT_DECRYPT_FAILED "decryption failed"', async () => {
      const wrapped = await f.wrapper.wrapKeys(first().ec, k)
      const variants = f.tamper(wrapped)
      expect(variants.length).toBeGreaterThan(0)
      for (const v of variants) {
        expect(Buffer.from(v)).not.toEqual(Buffer.from(wrapped))
        await expectDecryptFailed(f.wrapper.unwrapKey(first().dc, v))
      }
    })

    it('noPossibleKeys is true for an empty config and false once keys are offered', () => {
      expect(f.wrapper.noPossibleKeys({})).toBe(true)
      expect(f.wrapper.noPossibleKeys(first().dc)).toBe(false)
      expect(f.wrapper.noPossibleKeys(f.unrelated)).toBe(false)
    })

    it('hasRecipients is false for an empty config and true for a recipient', () => {
      expect(f.wrapper.hasRecipients({})).toBe(false)
      expect(f.wrapper.hasRecipients(first().ec)).toBe(true)
    })

    it('an unrelated key offered with the right one, before or after it, does not stop the unwrap', async () => {
      const wrapped = await f.wrapper.wrapKeys(first().ec, k)
      const before = mergeConfigs(f.unrelated, first().dc)
      const after = mergeConfigs(first().dc, f.unrelated)
      expect(Buffer.from(await f.wrapper.unwrapKey(before, wrapped))).toEqual(k)
      expect(Buffer.from(await f.wrapper.unwrapKey(after, wrapped))).toEqual(k)
    })

    it('wrapping is randomized: two wraps of the same k differ', async () => {
      const a = Buffer.from(await f.wrapper.wrapKeys(first().ec, k))
      const b = Buffer.from(await f.wrapper.wrapKeys(first().ec, k))
      expect(a).not.toEqual(b)
    })
  })
}
