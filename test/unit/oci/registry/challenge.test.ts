import { describe, expect, it } from 'vitest'
import { parseChallenges } from '../../../../lib/oci/registry/challenge.js'

describe('parseChallenges', () => {
  it('parses a Bearer challenge with quoted parameters', () => {
    expect(
      parseChallenges(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.example/token',
          service: 'registry.example',
          scope: 'repository:a/b:pull,push',
        },
      },
    ])
  })

  it('parses Basic, several challenges in one header, and several headers', () => {
    expect(parseChallenges('Basic realm="Registry Realm"')).toEqual([
      { scheme: 'basic', params: { realm: 'Registry Realm' } },
    ])
    expect(parseChallenges('Basic realm="a", Bearer realm="b",service=s').map((c) => c.scheme)).toEqual([
      'basic',
      'bearer',
    ])
    expect(parseChallenges(['Basic realm=x', 'Bearer realm="y"']).map((c) => c.params.realm)).toEqual([
      'x',
      'y',
    ])
  })

  it('handles escapes, odd spacing and error parameters', () => {
    const [c] = parseChallenges('Bearer  realm = "a\\"b" , error="insufficient_scope"')
    expect(c?.params).toEqual({ realm: 'a"b', error: 'insufficient_scope' })
  })

  it('never throws on garbage', () => {
    for (const junk of ['', '=', '"', 'Bearer realm="unterminated', ',,,', 'Bearer ,=,'])
      expect(() => parseChallenges(junk)).not.toThrow()
    expect(parseChallenges(undefined)).toEqual([])
  })
})
