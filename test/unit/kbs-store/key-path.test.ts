/**
 * plugins/kbs-store/fs/key-path.ts: the only code that turns a store key into a file path. Worked
 * examples, then a property: for any string at all, the mapping either refuses the key
 * (ERR_KBS_STORE_KEY_INVALID) or names a file strictly inside the namespace directory, and two
 * different keys never share a file.
 */
import fc from 'fast-check'
import { join, relative, sep } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isValidStoreKey } from '../../../lib/kbs/store.js'
import { CofferError } from '../../../lib/util/errors.js'
import { resolveEntryPath } from '../../../plugins/kbs-store/fs/key-path.js'

const ROOT = '/srv/kbs'

describe('resolveEntryPath', () => {
  it('maps n segments to <ns>/<n>/<segments>', () => {
    expect(resolveEntryPath(ROOT, 'resource', 'default/key/tag')).toEqual({
      dir: '/srv/kbs/resource/3/default/key',
      name: 'tag',
      file: '/srv/kbs/resource/3/default/key/tag',
    })
    expect(resolveEntryPath(ROOT, 'session', 'abc').file).toBe('/srv/kbs/session/1/abc')
    expect(resolveEntryPath(ROOT, 'policy', 'a/b').file).toBe('/srv/kbs/policy/2/a/b')
    // `a` (a file at depth 1) and `a/b` (below a directory `a` at depth 2) never collide.
    expect(resolveEntryPath(ROOT, 'policy', 'a').file).toBe('/srv/kbs/policy/1/a')
  })

  it('for any string: refused, or a file strictly inside its namespace; distinct keys, distinct files', () => {
    const chars = ['a', 'B', '0', '_', '.', '-', '/', '\\', '%', ':', '\u0000', ' ', 'é', '\u2215']
    const segment = fc.array(fc.constantFrom(...chars), { maxLength: 12 }).map((a) => a.join(''))
    const key = fc.oneof(
      segment,
      fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('/')),
      fc.string({ maxLength: 40 }),
    )
    const seen = new Map<string, string>()
    fc.assert(
      fc.property(key, (k) => {
        let file: string
        try {
          file = resolveEntryPath(ROOT, 'resource', k).file
        } catch (err) {
          expect(err).toBeInstanceOf(CofferError)
          expect((err as CofferError).code).toBe('ERR_KBS_STORE_KEY_INVALID')
          expect(isValidStoreKey(k)).toBe(false)
          return
        }
        expect(isValidStoreKey(k)).toBe(true)
        const rel = relative(join(ROOT, 'resource'), file)
        expect(rel.startsWith('..')).toBe(false)
        expect(rel.split(sep)).toEqual([String(k.split('/').length), ...k.split('/')])
        const other = seen.get(file)
        if (other !== undefined) expect(other).toBe(k)
        seen.set(file, k)
      }),
      { numRuns: 5000 },
    )
  })
})
