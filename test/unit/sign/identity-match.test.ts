/**
 * Every signedIdentity kind (c/image `policy_reference_match.go`), as a table:
 * rule, the reference the image was pulled by, the reference the signature claims, verdict.
 */
import { describe, expect, it } from 'vitest'
import { identityMatches } from '../../../lib/sign/identity-match.js'
import { parseNamed } from '../../../lib/sign/named-reference.js'
import type { SignedIdentity } from '../../../lib/sign/policy.js'

const D = `sha256:${'a'.repeat(64)}`
const D2 = `sha256:${'b'.repeat(64)}`

const CASES: [SignedIdentity | undefined, string, string, boolean][] = [
  // default = matchRepoDigestOrExact
  [undefined, 'r.io/a/b:1', 'r.io/a/b:1', true],
  [undefined, 'r.io/a/b:1', 'r.io/a/b:2', false],
  [undefined, 'r.io/a/b:1', 'r.io/a/b', false],
  [undefined, `r.io/a/b@${D}`, 'r.io/a/b:1', true],
  [undefined, `r.io/a/b@${D}`, 'r.io/a/c:1', false],
  [undefined, `r.io/a/b@${D}`, 'r.io/a/b', false],
  [undefined, 'busybox:latest', 'docker.io/library/busybox:latest', true],
  [undefined, 'r.io/a/b:1', 'not a reference', false],
  [{ type: 'matchRepoDigestOrExact' }, 'r.io/a/b:1', 'R.io/a/b:1', false],
  // matchExact: both tagged (or both the same digest) and equal
  [{ type: 'matchExact' }, 'r.io/a/b:1', 'r.io/a/b:1', true],
  [{ type: 'matchExact' }, `r.io/a/b@${D}`, 'r.io/a/b:1', false],
  [{ type: 'matchExact' }, `r.io/a/b@${D}`, `r.io/a/b@${D}`, true],
  [{ type: 'matchExact' }, 'r.io/a/b:1', 'r.io/a/b', false],
  // matchRepository: names only
  [{ type: 'matchRepository' }, 'r.io/a/b:1', 'r.io/a/b', true],
  [{ type: 'matchRepository' }, 'r.io/a/b:1', 'r.io/a/b:9', true],
  [{ type: 'matchRepository' }, `r.io/a/b@${D}`, `r.io/a/b@${D2}`, true],
  [{ type: 'matchRepository' }, 'r.io/a/b:1', 'r.io/a/c', false],
  [{ type: 'matchRepository' }, 'r.io/a/b:1', 'other.io/a/b', false],
  // exactReference: the signature must be exactly the configured reference
  [{ type: 'exactReference', dockerReference: 'r.io/x/y:2' }, 'r.io/a/b:1', 'r.io/x/y:2', true],
  [{ type: 'exactReference', dockerReference: 'r.io/x/y:2' }, 'r.io/a/b:1', 'r.io/a/b:1', false],
  [{ type: 'exactReference', dockerReference: 'r.io/x/y:2' }, 'r.io/a/b:1', 'r.io/x/y', false],
  // exactRepository
  [{ type: 'exactRepository', dockerRepository: 'r.io/x/y' }, 'r.io/a/b:1', 'r.io/x/y:anything', true],
  [{ type: 'exactRepository', dockerRepository: 'r.io/x/y' }, 'r.io/a/b:1', 'r.io/x/z:1', false],
  // remapIdentity: prefix on a '/' boundary, then matchRepoDigestOrExact
  [
    { type: 'remapIdentity', prefix: 'mirror.io/ns', signedPrefix: 'r.io/a' },
    'mirror.io/ns/b:1',
    'r.io/a/b:1',
    true,
  ],
  [
    { type: 'remapIdentity', prefix: 'mirror.io/ns', signedPrefix: 'r.io/a' },
    'mirror.io/ns/b:1',
    'mirror.io/ns/b:1',
    false,
  ],
  [
    { type: 'remapIdentity', prefix: 'mirror.io/ns', signedPrefix: 'r.io/a' },
    'mirror.io/nsx/b:1',
    'r.io/ax/b:1',
    false,
  ],
  [
    { type: 'remapIdentity', prefix: 'mirror.io/ns', signedPrefix: 'r.io/a' },
    'mirror.io/nsx/b:1',
    'mirror.io/nsx/b:1',
    true,
  ],
  [
    { type: 'remapIdentity', prefix: 'mirror.io/ns', signedPrefix: 'r.io/a' },
    `mirror.io/ns/b@${D}`,
    'r.io/a/b:7',
    true,
  ],
  [
    { type: 'remapIdentity', prefix: 'mirror.io/ns/b', signedPrefix: 'r.io/a/b' },
    'mirror.io/ns/b:1',
    'r.io/a/b:1',
    true,
  ],
]

describe('identityMatches', () => {
  it.each(CASES)('%j: image %s, signed %s → %s', (rule, intended, signed, expected) => {
    expect(identityMatches(rule, parseNamed(intended)!, signed)).toBe(expected)
  })

  it('an image without a docker identity (oci:) matches only the fixed-reference rules', () => {
    expect(identityMatches(undefined, undefined, 'r.io/a/b:1')).toBe(false)
    expect(identityMatches({ type: 'matchRepository' }, undefined, 'r.io/a/b:1')).toBe(false)
    expect(
      identityMatches({ type: 'exactRepository', dockerRepository: 'r.io/a/b' }, undefined, 'r.io/a/b:1'),
    ).toBe(true)
  })
})
