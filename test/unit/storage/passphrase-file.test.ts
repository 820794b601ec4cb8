import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readPassphraseFile } from '../../../lib/storage/passphrase-file.js'

let work: string
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-pass-'))
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

async function file(content: string | Buffer): Promise<string> {
  const p = join(work, `p${Math.random().toString(36).slice(2)}`)
  await writeFile(p, content)
  return p
}

// gocryptfs 2.3 -passfile, observed: "pw\nextra\n" unlocks a volume made with "pw"; "pw\r\n" does
// not (exit 12); an empty first line is fatal.
describe('readPassphraseFile (as gocryptfs -passfile)', () => {
  it('uses the first line without its newline', async () => {
    expect((await readPassphraseFile(await file('pw\nextra\n'))).toString()).toBe('pw')
    expect((await readPassphraseFile(await file('pw'))).toString()).toBe('pw')
  })

  it('keeps a carriage return, as gocryptfs does', async () => {
    expect((await readPassphraseFile(await file('pw\r\n'))).toString()).toBe('pw\r')
  })

  it('refuses an empty first line, a missing file and an oversized file', async () => {
    await expect(readPassphraseFile(await file('\nsecond'))).rejects.toMatchObject({
      code: 'ERR_STORAGE_PASSPHRASE_EMPTY',
    })
    await expect(readPassphraseFile(join(work, 'missing'))).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' })
    await expect(readPassphraseFile(await file(Buffer.alloc(65 * 1024, 0x61)))).rejects.toMatchObject({
      code: 'ERR_TOO_LARGE',
    })
  })
})
