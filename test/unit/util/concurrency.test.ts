import { describe, expect, it } from 'vitest'
import { inOrder } from '../../../lib/util/concurrency.js'

describe('inOrder', () => {
  it('yields in index order as soon as each item and all before it are in', async () => {
    const q = inOrder<string>(3)
    const seen: string[] = []
    const reading = (async () => {
      for await (const v of q) seen.push(v)
    })()
    q.put(1, 'b')
    await new Promise((r) => setTimeout(r, 5))
    expect(seen).toEqual([]) // item 0 is not in yet
    q.put(0, 'a')
    await new Promise((r) => setTimeout(r, 5))
    expect(seen).toEqual(['a', 'b'])
    q.put(2, 'c')
    await reading
    expect(seen).toEqual(['a', 'b', 'c'])
  })

  it('ends the reader with the failure; an unread failure is not an unhandled rejection', async () => {
    const q = inOrder<number>(2)
    q.put(0, 7)
    const read = (async () => {
      const out: number[] = []
      for await (const v of q) out.push(v)
      return out
    })()
    q.fail(new Error('boom'))
    await expect(read).rejects.toThrow('boom')
    inOrder<number>(2).fail(new Error('nobody reads'))
    await new Promise((r) => setTimeout(r, 5))
  })
})
