/**
 * Tampering judged by both implementations: what gocryptfs answers with EIO, coffer refuses with
 * ERR_STORAGE_CORRUPT (its EIO), block for block; and both refuse a wrong passphrase.
 */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CIPHER_BS, PLAIN_BS } from '../../lib/storage/content-cipher.js'
import { createVolume, openVolume } from '../../lib/storage/open-volume.js'
import { errnoOf } from '../../lib/storage/posix-error.js'
import type { Volume } from '../../lib/storage/volume.js'
import { mountGocryptfs, runTool, type GocryptfsMount } from '../helpers/gocryptfs.js'
import { bytes } from '../helpers/sample-tree.js'
import { readRange } from '../helpers/read-range.js'

const PASS = 'tamper passphrase'
let work: string
let cipher: string
let mnt: string
let passfile: string
let vol: Volume
const mounts: GocryptfsMount[] = []

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-gctamper-'))
  cipher = join(work, 'cipher')
  mnt = join(work, 'mnt')
  passfile = join(work, 'pass')
  await Promise.all([mkdir(cipher), mkdir(mnt), writeFile(passfile, `${PASS}\n`)])
  vol = await createVolume(cipher, Buffer.from(PASS), { scryptLogN: 10 })
})
afterEach(async () => {
  for (const m of mounts.splice(0)) await m.unmount()
})
afterAll(async () => {
  vol.close()
  for (const m of mounts.splice(0)) await m.unmount()
  await rm(work, { recursive: true, force: true })
})

/** Writes `/<name>` through coffer; returns its backing path (found as the new root entry). */
async function cofferFile(name: string, data: Buffer): Promise<string> {
  const before = new Set(await readdir(cipher))
  await vol.writeFile(`/${name}`, data)
  return join(
    cipher,
    (await readdir(cipher)).find((n) => !before.has(n))!,
  )
}

/** Reads `length` bytes at `pos` from the gocryptfs mount: the data or the errno code. */
async function gocryptfsRead(name: string, pos: number, length: number): Promise<Buffer | string> {
  const m = await mountGocryptfs(cipher, mnt, passfile)
  mounts.push(m)
  try {
    return await readRange(join(mnt, name), pos, length)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err)
  } finally {
    await m.unmount()
  }
}

async function cofferRead(name: string, pos: number, length: number): Promise<Buffer | string> {
  const f = await vol.open(`/${name}`)
  try {
    return await f.read(pos, length)
  } catch (err) {
    return errnoOf(err)
  } finally {
    await f.close()
  }
}

const blockAt = (n: number): number => 18 + n * CIPHER_BS

describe('tampered ciphertext, judged by gocryptfs and by coffer', () => {
  it('a flipped byte fails that block only, in both', async () => {
    const data = bytes('flip', 3 * PLAIN_BS)
    const path = await cofferFile('flip', data)
    const raw = await readFile(path)
    raw[blockAt(1) + 40]! ^= 0x80
    await writeFile(path, raw)
    for (const read of [gocryptfsRead, cofferRead]) {
      expect(await read('flip', 0, PLAIN_BS)).toEqual(data.subarray(0, PLAIN_BS))
      expect(await read('flip', 2 * PLAIN_BS, PLAIN_BS)).toEqual(data.subarray(2 * PLAIN_BS))
      expect(await read('flip', PLAIN_BS, 10)).toBe('EIO')
    }
  })

  it('blocks swapped within a file fail in both', async () => {
    const path = await cofferFile('swap', bytes('swap', 2 * PLAIN_BS))
    const raw = await readFile(path)
    const b0 = Buffer.from(raw.subarray(blockAt(0), blockAt(1)))
    raw.copyWithin(blockAt(0), blockAt(1), blockAt(2))
    b0.copy(raw, blockAt(1))
    await writeFile(path, raw)
    for (const read of [gocryptfsRead, cofferRead]) {
      expect(await read('swap', 0, 10)).toBe('EIO')
      expect(await read('swap', PLAIN_BS, 10)).toBe('EIO')
    }
  })

  it('a block copied from another file fails in both (the file ID is authenticated)', async () => {
    const a = await cofferFile('donor', bytes('donor', PLAIN_BS))
    const b = await cofferFile('victim', bytes('victim', PLAIN_BS))
    const rawB = await readFile(b)
    ;(await readFile(a)).copy(rawB, blockAt(0), blockAt(0))
    await writeFile(b, rawB)
    for (const read of [gocryptfsRead, cofferRead]) expect(await read('victim', 0, 10)).toBe('EIO')
  })
})

describe('wrong passphrase', () => {
  it('gocryptfs refuses to mount and coffer refuses to open, each with a clear error', async () => {
    const wrong = join(work, 'wrong')
    await writeFile(wrong, 'not it\n')
    const r = await runTool('gocryptfs', ['-q', '-passfile', wrong, cipher, mnt])
    // gocryptfs exits 12 ("password incorrect").
    expect(r.code).toBe(12)
    expect(r.stderr).toMatch(/[Pp]assword incorrect/)
    await expect(openVolume(cipher, Buffer.from('not it'))).rejects.toMatchObject({
      code: 'ERR_STORAGE_WRONG_PASSPHRASE',
      message: expect.stringMatching(/wrong passphrase/) as unknown,
    })
  })
})
