/** Duplicate JSON keys: skopeo 1.9.3 refuses `{"default":…,"default":…}` ("Duplicate key"), so coffer does too. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parsePolicy } from '../../../lib/sign/policy.js'
import { findDuplicateKey } from '../../../lib/sign/strict-json.js'

describe('findDuplicateKey', () => {
  it.each([
    ['{"a":1,"a":2}', 'a'],
    ['{"a":{"b":1,"b":2}}', 'b'],
    ['[{"a":1},{"a":1,"c":[1,{"d":0,"d":1}]}]', 'd'],
    ['{"a\\u0062":1,"ab":2}', 'ab'],
    ['{"a":"\\"a\\"","b":{"a":1},"c":["a","a"]}', undefined],
    ['{"x":{"a":1},"y":{"a":1}}', undefined],
    ['[]', undefined],
    ['"{\\"a\\":1,\\"a\\":1}"', undefined],
  ])('%s → %s', (text, expected) => {
    expect(findDuplicateKey(text)).toBe(expected)
  })

  it('agrees with JSON.parse on documents without duplicates (fast-check)', () => {
    fc.assert(
      fc.property(fc.json(), (text) => {
        expect(findDuplicateKey(text)).toBeUndefined()
      }),
      { numRuns: 500 },
    )
  })

  it('a policy with a duplicate key is invalid, whichever copy would have won', () => {
    const dup = '{"default":[{"type":"reject"}],"default":[{"type":"insecureAcceptAnything"}]}'
    expect(() => parsePolicy(Buffer.from(dup))).toThrowError(
      expect.objectContaining({ code: 'ERR_SIGN_POLICY_INVALID' }),
    )
    const inner = '{"default":[{"type":"insecureAcceptAnything","type":"reject"}]}'
    expect(() => parsePolicy(Buffer.from(inner))).toThrowError(/duplicate key "type"/)
  })
})
