import { describe, expect, it } from 'vitest'
import { formatResourceUri, parseResourceUri, resourcePath } from '../../../lib/kbs/resource-uri.js'

describe('KBS resource URIs', () => {
  it.each([
    [
      'kbs:///default/key/key_id1',
      { plugin: 'resource', repository: 'default', type: 'key', tag: 'key_id1' },
      '/kbs/v0/resource/default/key/key_id1',
    ],
    [
      'kbs://kbs.example:8080/my-repo/image-kek/v1.2',
      { plugin: 'resource', host: 'kbs.example:8080', repository: 'my-repo', type: 'image-kek', tag: 'v1.2' },
      '/kbs/v0/resource/my-repo/image-kek/v1.2',
    ],
    [
      'kbs+plugin1:///a/b/c?x=1',
      { plugin: 'plugin1', repository: 'a', type: 'b', tag: 'c', query: 'x=1' },
      '/kbs/v0/plugin1/a/b/c?x=1',
    ],
  ])('%s', (input, parsed, path) => {
    const u = parseResourceUri(input)
    expect(u).toEqual(parsed)
    expect(resourcePath(u)).toBe(path)
    // The canonical form drops the host (a guest asks the KBS it is configured with).
    const { host: _host, ...withoutHost } = u
    expect(parseResourceUri(formatResourceUri(u))).toEqual(withoutHost)
  })

  it.each([
    'kbs:///a/b',
    'kbs:///a/b/c/d',
    'kbs:///a/../c',
    'kbs:///a//c',
    'http:///a/b/c',
    'kbs:/a/b/c',
    'kbs:///a b/c/d',
    'kbs+Bad:///a/b/c',
    '',
  ])('refuses %j', (input) => {
    expect(() => parseResourceUri(input)).toThrow(
      expect.objectContaining({ code: 'ERR_KBS_RESOURCE_URI_INVALID' }),
    )
  })
})
