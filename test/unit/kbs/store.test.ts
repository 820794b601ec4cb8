/**
 * lib/kbs/store.ts: the boundary checks every KBS store runs (the stores' behaviour is in
 * test/suites/kbs-store.ts).
 */
import { describe, expect, it } from 'vitest'
import { assertPutOptions, assertStoreKey, isExpired, isValidStoreKey } from '../../../lib/kbs/store.js'
import { CofferError } from '../../../lib/util/errors.js'

function messageOf(f: () => void): string {
  try {
    f()
  } catch (err) {
    expect(err).toBeInstanceOf(CofferError)
    return (err as CofferError).message
  }
  throw new Error('expected a throw')
}

describe('store key checks', () => {
  it('accepts resource paths and session ids, refuses traversal', () => {
    expect(isValidStoreKey('default/key/tag')).toBe(true)
    expect(isValidStoreKey('0123456789abcdef0123456789abcdef')).toBe(true)
    expect(isValidStoreKey('a/../b')).toBe(false)
    expect(isValidStoreKey('a/./b')).toBe(false)
  })

  it('names a short printable bad key in the message, never a long or unprintable one', () => {
    expect(messageOf(() => assertStoreKey('resource', '../x'))).toBe('invalid store key "../x"')
    expect(messageOf(() => assertStoreKey('resource', 'x'.repeat(5000)))).toBe('invalid store key')
    expect(messageOf(() => assertStoreKey('resource', 'a\nFAKE LOG LINE'))).toBe('invalid store key')
    expect(messageOf(() => assertStoreKey('resource', 42 as unknown as string))).toBe('invalid store key')
    expect(messageOf(() => assertStoreKey('nope' as 'resource', 'k'))).toBe('unknown store namespace')
  })

  it('expiry: integers only; an entry expires at its expiresAt, not after', () => {
    expect(() => assertPutOptions({ expiresAt: 1_700_000_000_000 })).not.toThrow()
    expect(() => assertPutOptions(undefined)).not.toThrow()
    for (const bad of [Number.NaN, Infinity, 1.5, 2 ** 60])
      expect(() => assertPutOptions({ expiresAt: bad })).toThrow(CofferError)
    expect(isExpired(undefined, 10)).toBe(false)
    expect(isExpired(10, 10)).toBe(true)
    expect(isExpired(11, 10)).toBe(false)
  })
})
