/** Signature payloads: what we write, and c/image's strict parsing of what we read. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  buildPayload,
  COSIGN_SIGNATURE_TYPE,
  parsePayload,
  SIMPLE_SIGNING_TYPE,
} from '../../../lib/sign/payload.js'
import { CofferError } from '../../../lib/util/errors.js'

const D = `sha256:${'a'.repeat(64)}`

describe('payload', () => {
  it("cosign payloads have cosign's exact shape (optional: null)", () => {
    expect(buildPayload(COSIGN_SIGNATURE_TYPE, 'r.io/a', D).toString()).toBe(
      `{"critical":{"identity":{"docker-reference":"r.io/a"},"image":{"docker-manifest-digest":"${D}"},"type":"cosign container image signature"},"optional":null}`,
    )
  })

  it('round-trips both types and keeps creator and timestamp', () => {
    const bytes = buildPayload(SIMPLE_SIGNING_TYPE, 'r.io/a:1', D, {
      creator: 'coffer',
      timestamp: 1700000000,
    })
    expect(parsePayload(bytes, SIMPLE_SIGNING_TYPE)).toEqual({
      type: SIMPLE_SIGNING_TYPE,
      dockerReference: 'r.io/a:1',
      manifestDigest: D,
      creator: 'coffer',
      timestamp: 1700000000,
    })
  })

  const crit = {
    identity: { 'docker-reference': 'r.io/a:1' },
    image: { 'docker-manifest-digest': D },
    type: SIMPLE_SIGNING_TYPE,
  }
  const bad: [string, unknown][] = [
    ['wrong type', { critical: { ...crit, type: COSIGN_SIGNATURE_TYPE }, optional: null }],
    ['unknown critical member', { critical: { ...crit, extra: 1 }, optional: null }],
    [
      'unknown image member',
      { critical: { ...crit, image: { 'docker-manifest-digest': D, x: 1 } }, optional: null },
    ],
    [
      'unknown identity member',
      { critical: { ...crit, identity: { 'docker-reference': 'a', x: 1 } }, optional: null },
    ],
    ['missing optional', { critical: crit }],
    ['unknown top-level member', { critical: crit, optional: null, x: 1 }],
    ['non-integral timestamp', { critical: crit, optional: { timestamp: 1.5 } }],
    ['creator not a string', { critical: crit, optional: { creator: 1 } }],
    [
      'digest not a string',
      { critical: { ...crit, image: { 'docker-manifest-digest': 1 } }, optional: null },
    ],
    ['array', []],
  ]
  it.each(bad)('refuses %s', (_name, doc) => {
    expect(() => parsePayload(Buffer.from(JSON.stringify(doc)), SIMPLE_SIGNING_TYPE)).toThrowError(
      expect.objectContaining({ code: 'ERR_SIGN_SIGNATURE_INVALID' }),
    )
  })

  it('ignores unknown optional members', () => {
    const doc = { critical: crit, optional: { creator: 'x', something: { nested: true } } }
    expect(parsePayload(Buffer.from(JSON.stringify(doc)), SIMPLE_SIGNING_TYPE).creator).toBe('x')
  })

  it('never crashes on arbitrary input (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.json().map((s) => Buffer.from(s)),
          fc.uint8Array(),
        ),
        (bytes) => {
          try {
            parsePayload(bytes, COSIGN_SIGNATURE_TYPE)
          } catch (err) {
            expect((err as CofferError).code).toBe('ERR_SIGN_SIGNATURE_INVALID')
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})
