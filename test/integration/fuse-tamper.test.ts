/**
 * An attacker who can write the backing directory, seen through a real coffer FUSE mount: a
 * flipped ciphertext byte is EIO for its block (other blocks still read), blocks swapped within
 * a file or between files are EIO, and each refusal is logged by the server. A wrong passphrase
 * is a clear coded error before anything is mounted.
 */
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CIPHER_BS, PLAIN_BS } from '../../lib/storage/content-cipher.js'
import { createVolume } from '../../lib/storage/open-volume.js'
import { coffer } from '../helpers/coffer.js'
import { isMounted, startCofferMount, type CofferMount } from '../helpers/coffer-mount.js'
import { readRange } from '../helpers/read-range.js'

const PASS = 'tamper passphrase'
let work: string
let cipher: string
let mnt: string
let state: string
let mount: CofferMount | undefined
const data: Record<string, Buffer> = {}
/** Backing path of each plaintext file, found by writing the files one at a time. */
const backing: Record<string, string> = {}

const block = (n: number): [number, number] => [18 + n * CIPHER_BS, 18 + (n + 1) * CIPHER_BS]

/**
 * Reads like cat: until 0 bytes or an error. (Not fs.promises.readFile: on Node 20 it stops after
 * a short read, and the kernel answers a read spanning a good and a bad page with the good bytes
 * first, then EIO on the next read; so readFile returns the first block without an error.)
 */
async function readToEnd(path: string): Promise<Buffer> {
  const fh = await fs.open(path, 'r')
  try {
    const parts: Buffer[] = []
    for (let pos = 0; ;) {
      const buf = Buffer.alloc(64 * 1024)
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
      if (bytesRead === 0) return Buffer.concat(parts)
      parts.push(buf.subarray(0, bytesRead))
      pos += bytesRead
    }
  } finally {
    await fh.close()
  }
}

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'coffer-fuse-tamper-'))
  cipher = join(work, 'cipher')
  mnt = join(work, 'mnt')
  state = join(work, 'state')
  await fs.mkdir(cipher)
  await fs.mkdir(mnt)
  await fs.writeFile(join(work, 'pass'), `${PASS}\n`)
  await fs.writeFile(join(work, 'wrong'), 'not the passphrase\n')
  const vol = await createVolume(cipher, Buffer.from(PASS), { scryptLogN: 10 })
  for (const [name, blocks] of [
    ['flip', 3],
    ['swap-within', 2],
    ['x', 2],
    ['y', 2],
    ['header', 1],
  ] as const) {
    const before = new Set(await fs.readdir(cipher))
    data[name] = randomBytes(blocks * PLAIN_BS)
    await vol.writeFile(`/${name}`, data[name])
    backing[name] = join(
      cipher,
      (await fs.readdir(cipher)).find((n) => !before.has(n))!,
    )
  }
  vol.close()

  // === the attacks
  const flip = await fs.readFile(backing.flip!)
  flip[block(1)[0] + 100]! ^= 0x01
  await fs.writeFile(backing.flip!, flip)
  const within = await fs.readFile(backing['swap-within']!)
  const b0 = Buffer.from(within.subarray(...block(0)))
  within.copyWithin(block(0)[0], ...block(1))
  b0.copy(within, block(1)[0])
  await fs.writeFile(backing['swap-within']!, within)
  const x = await fs.readFile(backing.x!)
  const y = await fs.readFile(backing.y!)
  const xb1 = Buffer.from(x.subarray(...block(1)))
  y.copy(x, block(1)[0], ...block(1))
  xb1.copy(y, block(1)[0])
  await fs.writeFile(backing.x!, x)
  await fs.writeFile(backing.y!, y)
  const header = await fs.readFile(backing.header!)
  header[5]! ^= 0xff // inside the file ID: every block's additional data changes
  await fs.writeFile(backing.header!, header)
})
afterAll(async () => {
  await mount?.stop()
  await fs.rm(work, { recursive: true, force: true })
})

describe('wrong passphrase', () => {
  it('fails with ERR_STORAGE_WRONG_PASSPHRASE (exit 6) and mounts nothing', async () => {
    const r = await coffer(['mount', '--volume', cipher, mnt, '--passphrase-file', join(work, 'wrong')], {
      env: { COFFER_MOUNT_STATE_DIR: state },
    })
    expect(r.stderr).toContain('ERR_STORAGE_WRONG_PASSPHRASE')
    expect(r.code).toBe(6)
    expect(await isMounted(mnt)).toBe(false)
    expect(await fs.readdir(state).catch(() => [])).toEqual([])
  })
})

describe('tampered ciphertext through the mount', () => {
  beforeAll(async () => {
    mount = await startCofferMount(['--volume', cipher, mnt, '--passphrase-file', join(work, 'pass')], {
      env: { COFFER_MOUNT_STATE_DIR: state },
    })
  })

  it('a flipped byte is EIO for its block; the blocks around it still read', async () => {
    const f = join(mnt, 'flip')
    expect((await readRange(f, 0, PLAIN_BS)).equals(data.flip!.subarray(0, PLAIN_BS))).toBe(true)
    expect((await readRange(f, 2 * PLAIN_BS, PLAIN_BS)).equals(data.flip!.subarray(2 * PLAIN_BS))).toBe(true)
    await expect(readRange(f, PLAIN_BS + 10, 100)).rejects.toMatchObject({ code: 'EIO' })
    await expect(readToEnd(f)).rejects.toMatchObject({ code: 'EIO' })
    // A partial write into the bad block is refused too, rather than re-encrypting garbage.
    const fh = await fs.open(f, 'r+')
    try {
      await expect(fh.write(Buffer.from('z'), 0, 1, PLAIN_BS + 1)).rejects.toMatchObject({ code: 'EIO' })
    } finally {
      await fh.close()
    }
  })

  it('blocks swapped within a file are EIO', async () => {
    await expect(readRange(join(mnt, 'swap-within'), 0, 10)).rejects.toMatchObject({ code: 'EIO' })
    await expect(readRange(join(mnt, 'swap-within'), PLAIN_BS, 10)).rejects.toMatchObject({ code: 'EIO' })
  })

  it('blocks swapped between files are EIO (block 0, untouched, still reads)', async () => {
    for (const name of ['x', 'y']) {
      expect((await readRange(join(mnt, name), 0, PLAIN_BS)).equals(data[name]!.subarray(0, PLAIN_BS))).toBe(
        true,
      )
      await expect(readRange(join(mnt, name), PLAIN_BS, 10)).rejects.toMatchObject({ code: 'EIO' })
    }
  })

  it('a changed file ID in the header is EIO for the whole file', async () => {
    await expect(readRange(join(mnt, 'header'), 0, 10)).rejects.toMatchObject({ code: 'EIO' })
  })

  it('sizes and names are unaffected, and every refusal was logged by the server', async () => {
    expect((await fs.stat(join(mnt, 'flip'))).size).toBe(3 * PLAIN_BS)
    expect((await fs.readdir(mnt)).sort()).toEqual(['flip', 'header', 'swap-within', 'x', 'y'])
    const log = mount!.stderr()
    for (const name of ['flip', 'swap-within', 'x', 'y', 'header'])
      expect(log).toMatch(new RegExp(`read "/${name}": EIO \\(corrupt block`))
    expect(log).not.toContain(PASS)
  })
})
