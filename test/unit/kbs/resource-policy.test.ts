import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { TrustVector } from '../../../lib/attest/types.js'
import { issueEarToken, type EarClaims } from '../../../lib/kbs/ear-token.js'
import { POLICY_VERSION, ResourcePolicy } from '../../../lib/kbs/resource-policy.js'

const signer = (() => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  return { privateKey, publicKey }
})()

async function claims(
  tee: string,
  trust: TrustVector,
  evidence: Record<string, unknown> = {},
): Promise<EarClaims> {
  const { claims } = await issueEarToken(
    signer,
    {
      tee,
      claims: evidence,
      trust,
      runtimeData: {
        nonce: 'n',
        'tee-pubkey': { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: 'AQ', y: 'Ag' },
        'additional-evidence': '',
      },
      reportData: '00',
    },
    300,
    'test',
  )
  return claims
}

const policy = (rules: unknown[]): ResourcePolicy =>
  ResourcePolicy.parse(JSON.stringify({ version: POLICY_VERSION, rules }))
const key = { repository: 'default', type: 'key', tag: 'app' }

describe('resource policy evaluation', () => {
  const affirmingTpm = claims('tpm', { hardware: 2, executables: 3 }, { pcrs: ['00', 'ab'] })
  const sample = claims('sample', { hardware: 97, executables: 36, configuration: 2 })

  const cases: {
    name: string
    rules: unknown[]
    who: Promise<EarClaims>
    resource?: typeof key
    allow: boolean
  }[] = [
    { name: 'no rules: deny', rules: [], who: affirmingTpm, allow: false },
    {
      name: 'allow without condition',
      rules: [{ effect: 'allow', resources: ['*'] }],
      who: affirmingTpm,
      allow: true,
    },
    {
      name: 'allow affirming',
      rules: [{ effect: 'allow', resources: ['default/key/*'], when: 'status == "affirming"' }],
      who: affirmingTpm,
      allow: true,
    },
    {
      name: 'sample is contraindicated',
      rules: [{ effect: 'allow', resources: ['*'], when: 'status == "affirming"' }],
      who: sample,
      allow: false,
    },
    {
      name: 'sample allowed by name',
      rules: [{ effect: 'allow', resources: ['*'], when: 'tee == "sample"' }],
      who: sample,
      allow: true,
    },
    {
      name: 'pattern mismatch',
      rules: [{ effect: 'allow', resources: ['other/key/*'] }],
      who: affirmingTpm,
      allow: false,
    },
    {
      name: 'exact pattern',
      rules: [{ effect: 'allow', resources: ['default/key/app'] }],
      who: affirmingTpm,
      allow: true,
    },
    {
      name: 'tag mismatch',
      rules: [{ effect: 'allow', resources: ['default/key/other'] }],
      who: affirmingTpm,
      allow: false,
    },
    {
      name: 'deny wins over allow',
      rules: [
        { effect: 'allow', resources: ['*'] },
        { effect: 'deny', resources: ['default/*/*'], when: 'tee == "tpm"' },
      ],
      who: affirmingTpm,
      allow: false,
    },
    {
      name: 'deny that does not apply',
      rules: [
        { effect: 'allow', resources: ['*'] },
        { effect: 'deny', resources: ['*'], when: 'tee == "sample"' },
      ],
      who: affirmingTpm,
      allow: true,
    },
    {
      name: 'evidence claims',
      rules: [{ effect: 'allow', resources: ['*'], when: 'evidence.pcrs[1] == "ab"' }],
      who: affirmingTpm,
      allow: true,
    },
    {
      name: 'trust vector',
      rules: [{ effect: 'allow', resources: ['*'], when: 'trust.executables == 3' }],
      who: affirmingTpm,
      allow: true,
    },
    {
      name: 'resource variables',
      rules: [
        {
          effect: 'allow',
          resources: ['*'],
          when: 'resource.path == "default/key/app" && resource.tag == "app"',
        },
      ],
      who: affirmingTpm,
      allow: true,
    },
    {
      name: 'allow whose condition errors: not allowed',
      rules: [{ effect: 'allow', resources: ['*'], when: 'evidence.missing.deeper == 1' }],
      who: affirmingTpm,
      allow: false,
    },
    {
      name: 'deny whose condition errors: denied (fail closed)',
      rules: [
        { effect: 'allow', resources: ['*'] },
        { effect: 'deny', resources: ['*'], when: 'evidence.missing.deeper == 1' },
      ],
      who: affirmingTpm,
      allow: false,
    },
    {
      name: 'non-boolean result is not allow',
      rules: [{ effect: 'allow', resources: ['*'], when: '"yes"' }],
      who: affirmingTpm,
      allow: false,
    },
    {
      name: 'wrong type comparison is not allow',
      rules: [{ effect: 'allow', resources: ['*'], when: 'status == 1' }],
      who: affirmingTpm,
      allow: false,
    },
  ]

  it.each(cases)('$name', async ({ rules, who, resource, allow }) => {
    expect(policy(rules).evaluate(await who, resource ?? key).allow).toBe(allow)
  })
})

describe('resource policy parsing', () => {
  it.each([
    ['not JSON', '{'],
    ['Rego', 'package policy\ndefault allow = true'],
    ['wrong version', JSON.stringify({ version: 'v0', rules: [] })],
    ['unknown field', JSON.stringify({ version: POLICY_VERSION, rules: [], extra: 1 })],
    [
      'bad effect',
      JSON.stringify({ version: POLICY_VERSION, rules: [{ effect: 'maybe', resources: ['*'] }] }),
    ],
    [
      'bad pattern',
      JSON.stringify({ version: POLICY_VERSION, rules: [{ effect: 'allow', resources: ['a/../b'] }] }),
    ],
    [
      'two segments',
      JSON.stringify({ version: POLICY_VERSION, rules: [{ effect: 'allow', resources: ['a/b'] }] }),
    ],
    [
      'bad CEL',
      JSON.stringify({
        version: POLICY_VERSION,
        rules: [{ effect: 'allow', resources: ['*'], when: 'tee ==' }],
      }),
    ],
    [
      'no resources',
      JSON.stringify({ version: POLICY_VERSION, rules: [{ effect: 'allow', resources: [] }] }),
    ],
  ])('%s → ERR_KBS_POLICY_INVALID', (_name, text) => {
    expect(() => ResourcePolicy.parse(text)).toThrow(
      expect.objectContaining({ code: 'ERR_KBS_POLICY_INVALID' }),
    )
  })
})
