/**
 * Reads that libfuse's own threads answer (native/fuse-bridge.c: pread and AES-GCM without the JS
 * thread). O_DIRECT makes every read reach the server, at any offset and length. Checked: the
 * bytes equal what was written (holes, short and empty files, hard links); a read right after a
 * write that was answered early (write-behind) sees the new bytes; a reader racing a writer never
 * gets a failed or mixed block; and the server's own count shows the native path answered.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import * as fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCofferMount, type CofferMount } from '../helpers/coffer-mount.js'
import { readRange } from '../helpers/read-range.js'

let work: string
let mnt: string
let mount: CofferMount | undefined

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'coffer-native-reads-'))
  mnt = join(work, 'mnt')
  await fs.mkdir(mnt)
  mount = await startCofferMount(['--ephemeral', mnt], {
    env: { COFFER_MOUNT_STATE_DIR: join(work, 'state') },
  })
})
afterAll(async () => {
  await mount?.stop()
  await fs.rm(work, { recursive: true, force: true })
})

/** A deterministic pseudo-random source for offsets (a failure names its seed). */
function lcg(seed: number): () => number {
  let x = seed >>> 0
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32
}

describe('reads answered on libfuse threads', () => {
  it('equal the written bytes at random offsets and lengths, across holes, EOF and hard links', async () => {
    const files = new Map<string, Buffer>()
    files.set('big', randomBytes(3 * 1024 * 1024 + 1234))
    files.set('one', Buffer.from('x'))
    files.set('empty', Buffer.alloc(0))
    for (const [name, data] of files) await fs.writeFile(join(mnt, name), data)
    // A sparse file: 1 MiB hole between two written ranges.
    const sparse = Buffer.alloc(2 * 1024 * 1024 + 77)
    const head = randomBytes(5000)
    const tail = randomBytes(3000)
    head.copy(sparse, 0)
    tail.copy(sparse, sparse.length - tail.length)
    const sh = await fs.open(join(mnt, 'sparse'), 'w')
    await sh.write(head, 0, head.length, 0)
    await sh.write(tail, 0, tail.length, sparse.length - tail.length)
    await sh.close()
    files.set('sparse', sparse)
    await fs.link(join(mnt, 'big'), join(mnt, 'big-link'))
    files.set('big-link', files.get('big')!)

    const rnd = lcg(8)
    for (const [name, data] of files) {
      for (let i = 0; i < 60; i++) {
        const pos = Math.floor(rnd() * (data.length + 8192))
        const len = 1 + Math.floor(rnd() * 300_000)
        const got = await readRange(join(mnt, name), pos, len, { direct: true })
        const want = data.subarray(Math.min(pos, data.length), Math.min(pos + len, data.length))
        expect(got.equals(want), `${name} @${pos}+${len}`).toBe(true)
      }
    }
  })

  it('a read right after a write answered early (write-behind) sees the new bytes', async () => {
    const path = join(mnt, 'behind')
    const writer = await fs.open(path, 'w+')
    // Opened once, before the writes: opening would itself wait for the write-behind (every
    // request the JS thread answers does), and then the read would prove nothing.
    const reader = await fs.open(path, constants.O_RDONLY | constants.O_DIRECT)
    try {
      for (let gen = 1; gen <= 100; gen++) {
        const data = Buffer.alloc(256 * 1024, gen) // whole 128 KiB requests: the write-behind kind
        await writer.write(data, 0, data.length, 0)
        const got = Buffer.alloc(64 * 1024)
        const { bytesRead } = await reader.read(got, 0, got.length, 192 * 1024)
        expect(bytesRead).toBe(got.length)
        expect(
          got.every((b) => b === gen),
          `generation ${gen}`,
        ).toBe(true)
      }
    } finally {
      await reader.close()
      await writer.close()
    }
  })

  it('a reader racing a writer gets whole blocks of one generation each, never an error', async () => {
    const path = join(mnt, 'race')
    const size = 1024 * 1024
    await fs.writeFile(path, Buffer.alloc(size, 0))
    // The writer is its own process: rewrites the whole file, generation after generation.
    const writer = spawn(process.execPath, [
      '-e',
      `const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(path)}, 'r+');
       for (let g = 1; g <= 150; g++) fs.writeSync(fd, Buffer.alloc(${size}, g), 0, ${size}, 0);
       fs.closeSync(fd)`,
    ])
    const done = new Promise<number | null>((resolve) => writer.on('exit', resolve))
    let finished = false
    void done.then(() => (finished = true))
    const rnd = lcg(21)
    let reads = 0
    while (!finished || reads < 50) {
      const pos = Math.floor(rnd() * 256) * 4096
      // 64 KiB: one FUSE request. A 128 KiB O_DIRECT read into a buffer that is not page-aligned
      // spans 33 pages, so the kernel sends it as two requests, and a block cut between them can
      // hold two generations (gocryptfs shows the same); within one request it cannot.
      const got = await readRange(path, pos, 64 * 1024, { direct: true })
      for (let b = 0; b < got.length; b += 4096) {
        const block = got.subarray(b, b + 4096)
        expect(
          block.every((x) => x === block[0]),
          `block at ${pos + b}`,
        ).toBe(true)
      }
      reads++
    }
    expect(await done).toBe(0)
    expect(mount!.stderr()).not.toMatch(/EIO/)
  })

  it('the server reports that libfuse threads answered reads', async () => {
    await readRange(join(mnt, 'big'), 0, 128 * 1024, { direct: true })
    await mount!.stop()
    const unmounted = mount!.events().find((e) => 'unmounted' in e) as
      { reads: { native: number; js: number } } | undefined
    expect(unmounted?.reads.native).toBeGreaterThan(0)
    expect(unmounted?.reads.js).toBeGreaterThanOrEqual(0)
  })
})
