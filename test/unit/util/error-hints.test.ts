/** Every error code has a hint that names a fix, and a CofferError's own hint wins over it. */
import { describe, expect, it } from 'vitest'
import { ERROR_HINTS, hintFor } from '../../../lib/util/error-hints.js'
import { CODES, CofferError, type CofferErrorCode } from '../../../lib/util/errors.js'

describe('error hints', () => {
  it('cover every code, and only codes that exist', () => {
    expect(Object.keys(ERROR_HINTS).sort()).toEqual(Object.keys(CODES).sort())
  })

  it.each(Object.keys(CODES) as CofferErrorCode[])('%s has a short, non-empty hint', (code) => {
    const hint = hintFor(code)
    expect(hint.trim().length).toBeGreaterThan(15)
    // One line under the message: long enough to name the fix, short enough to be read.
    expect(hint).not.toContain('\n')
    expect(hint.length).toBeLessThanOrEqual(200)
  })

  it('a CofferError can carry a more specific hint', () => {
    const err = new CofferError('ERR_NOT_FOUND', 'x.pem: no such file', { hint: 'run coffer keys generate' })
    expect(err.hint).toBe('run coffer keys generate')
    expect(new CofferError('ERR_NOT_FOUND', 'x').hint).toBeUndefined()
  })
})
