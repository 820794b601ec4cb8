import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { formatDockerReference, parseDockerReference } from '../../../lib/oci/reference.js'
import { isCofferError } from '../../../lib/util/errors.js'

const D = `sha256:${'a'.repeat(64)}`

describe('parseDockerReference', () => {
  it.each([
    ['alpine', 'docker.io', 'library/alpine', 'latest', undefined],
    ['alpine:3.19', 'docker.io', 'library/alpine', '3.19', undefined],
    ['library/alpine', 'docker.io', 'library/alpine', 'latest', undefined],
    ['user/app', 'docker.io', 'user/app', 'latest', undefined],
    ['docker.io/alpine', 'docker.io', 'library/alpine', 'latest', undefined],
    ['index.docker.io/alpine', 'docker.io', 'library/alpine', 'latest', undefined],
    ['localhost/app', 'localhost', 'app', 'latest', undefined],
    ['localhost:5000/a/b/c:v1', 'localhost:5000', 'a/b/c', 'v1', undefined],
    ['127.0.0.1:5000/app:1.0', '127.0.0.1:5000', 'app', '1.0', undefined],
    ['[::1]:5000/app', '[::1]:5000', 'app', 'latest', undefined],
    ['quay.io/org/app@' + D, 'quay.io', 'org/app', undefined, D],
    ['registry.example.com/a__b/c-d.e:tag_1', 'registry.example.com', 'a__b/c-d.e', 'tag_1', undefined],
  ])('%s', (input, host, repository, tag, digest) => {
    const ref = parseDockerReference(input)
    expect(ref.host).toBe(host)
    expect(ref.repository).toBe(repository)
    expect(ref.tag).toBe(tag)
    expect(ref.digest).toBe(digest)
  })

  it.each([
    ['', 'empty'],
    ['Alpine', 'lowercase'],
    ['docker.io/Library/alpine', 'lowercase'],
    ['alpine:', 'tag'],
    ['alpine:-bad', 'tag'],
    ['alpine:' + 'x'.repeat(129), 'tag'],
    ['alpine@sha256:123', 'sha256'],
    ['alpine@md5:' + 'a'.repeat(32), 'digest'],
    ['alpine:1@' + D, 'both a tag and a digest'],
    ['a//b', 'repository'],
    ['a/-b', 'repository'],
    ['host:99999/app', 'port'],
    ['ho_st.com/app', 'host'],
    ['with space', 'whitespace'],
    ['example.com/' + 'a'.repeat(250), 'longer than 255'],
    ['example.com/', 'empty'],
  ])('rejects %j with ERR_OCI_REFERENCE_INVALID', (input, why) => {
    let caught: unknown
    try {
      parseDockerReference(input)
    } catch (err) {
      caught = err
    }
    expect(isCofferError(caught, 'ERR_OCI_REFERENCE_INVALID')).toBe(true)
    expect((caught as Error).message.toLowerCase()).toContain(why.toLowerCase())
  })

  it('round-trips through its canonical form', () => {
    const component = fc.stringMatching(/^[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,8}){0,2}$/)
    const host = fc.constantFrom(
      'docker.io',
      'quay.io',
      'localhost:5000',
      '127.0.0.1:5000',
      'reg.example.com',
    )
    const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/)
    fc.assert(
      fc.property(host, fc.array(component, { minLength: 1, maxLength: 3 }), tag, (h, parts, t) => {
        const ref = parseDockerReference(`${h}/${parts.join('/')}:${t}`)
        expect(parseDockerReference(formatDockerReference(ref))).toEqual(ref)
      }),
    )
  })

  it('never throws anything but a coded error on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        try {
          parseDockerReference(s)
        } catch (err) {
          expect(isCofferError(err, 'ERR_OCI_REFERENCE_INVALID')).toBe(true)
        }
      }),
    )
  })
})
