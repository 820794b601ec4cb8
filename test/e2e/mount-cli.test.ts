/**
 * `coffer mount` / `coffer umount` / `coffer mount --list` as an operator uses them: usage errors
 * with exit codes, the state directory (entries while mounted, stale entries after a crash),
 * unmount by command and by SIGTERM while writes are in flight, and remounting a persistent
 * volume. Every mount is served by its own process and stopped in afterEach.
 */
import * as fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createVolume } from '../../lib/storage/open-volume.js'
import { coffer } from '../helpers/coffer.js'
import { isMounted, startCofferMount, type CofferMount } from '../helpers/coffer-mount.js'

let work: string
let state: string
let env: NodeJS.ProcessEnv
const mounts: CofferMount[] = []

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'coffer-mount-cli-'))
  state = join(work, 'state')
  env = { COFFER_MOUNT_STATE_DIR: state }
})
afterEach(async () => {
  for (const m of mounts.splice(0)) await m.stop()
})
afterAll(async () => {
  await fs.rm(work, { recursive: true, force: true })
})

async function mountpoint(name: string): Promise<string> {
  const dir = join(work, name)
  await fs.mkdir(dir, { recursive: true })
  return dir
}

async function start(args: string[]): Promise<CofferMount> {
  const m = await startCofferMount(args, { env })
  mounts.push(m)
  return m
}

async function list(): Promise<Record<string, unknown>[]> {
  const r = await coffer(['mount', '--list', '--json'], { env })
  expect(r.code).toBe(0)
  return r.json()[0]!.mounts as Record<string, unknown>[]
}

describe('usage errors', () => {
  it('a missing mode, two modes, a missing key or mountpoint are coded errors, nothing mounted', async () => {
    const mnt = await mountpoint('usage')
    const pass = join(work, 'usage.pass')
    await fs.writeFile(pass, 'pw\n')
    const cases: [string[], number, string][] = [
      [['mount', mnt], 2, 'ERR_USAGE'],
      [['mount', '--ephemeral', '--volume', work, mnt], 2, 'ERR_USAGE'],
      [['mount', '--volume', work, mnt], 2, 'ERR_USAGE'],
      [['mount', '--ephemeral', '--key', 'kbs:///a/b/c', mnt], 2, 'ERR_USAGE'],
      [['mount', '--ephemeral', join(work, 'does-not-exist')], 3, 'ERR_NOT_FOUND'],
      [
        ['mount', '--volume', join(work, 'no-volume'), mnt, '--passphrase-file', '/dev/null'],
        2,
        'ERR_STORAGE_PASSPHRASE_EMPTY',
      ],
      [['mount', '--volume', join(work, 'no-volume'), mnt, '--passphrase-file', pass], 3, 'ERR_NOT_FOUND'],
      [['mount', '--volume', work, mnt, '--passphrase-file', pass], 3, 'ERR_STORAGE_NOT_A_VOLUME'],
      [['umount', mnt], 3, 'ERR_STORAGE_NOT_MOUNTED'],
    ]
    for (const [args, code, err] of cases) {
      const r = await coffer(args, { env })
      expect(r.stderr, args.join(' ')).toContain(err)
      expect(r.code, args.join(' ')).toBe(code)
    }
    expect(await isMounted(mnt)).toBe(false)
  })
})

describe('mount, list, umount', () => {
  it('lists a live mount, refuses a second mount there, and umount stops the server cleanly', async () => {
    const mnt = await mountpoint('live')
    const m = await start(['--ephemeral', mnt])
    await fs.writeFile(join(mnt, 'x'), 'data')
    expect(await list()).toEqual([
      expect.objectContaining({
        mountpoint: mnt,
        kind: 'ephemeral',
        pid: m.pid,
        stale: false,
        backing: m.backing,
      }),
    ])
    const again = await coffer(['mount', '--ephemeral', mnt], { env })
    expect(again.stderr).toContain('ERR_STORAGE_MOUNTPOINT_BUSY')
    expect(again.code).toBe(4)

    const r = await coffer(['umount', mnt, '--json'], { env })
    expect(r.code).toBe(0)
    expect(r.json()).toEqual([{ unmounted: mnt }])
    expect(await m.exited).toBe(0)
    expect(await isMounted(mnt)).toBe(false)
    expect(await list()).toEqual([])
    await expect(fs.stat(m.backing)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('SIGTERM while a large write is in flight unmounts cleanly and exits 0', async () => {
    const mnt = await mountpoint('sigterm')
    const m = await start(['--ephemeral', mnt])
    const writing = fs.writeFile(join(mnt, 'big'), Buffer.alloc(64 * 1024 * 1024, 1)).catch((e: unknown) => e)
    await new Promise((r) => setTimeout(r, 150))
    m.child.kill('SIGTERM')
    expect(await m.exited).toBe(0)
    await writing // finished or failed (ENOTCONN/ENOENT): either way it returned, nothing hangs
    expect(await isMounted(mnt)).toBe(false)
    expect(await list()).toEqual([])
  })

  it('a crashed server leaves a stale entry; umount cleans it up and the mountpoint is usable again', async () => {
    const mnt = await mountpoint('crash')
    const m = await start(['--ephemeral', mnt])
    m.child.kill('SIGKILL')
    await m.exited
    await expect(fs.readdir(mnt)).rejects.toMatchObject({ code: 'ENOTCONN' })
    expect(await list()).toEqual([expect.objectContaining({ mountpoint: mnt, stale: true })])
    const r = await coffer(['umount', mnt], { env })
    expect(r.code).toBe(0)
    expect(await isMounted(mnt)).toBe(false)
    expect(await list()).toEqual([])
    await fs.rm(m.backing, { recursive: true, force: true }) // what a crash leaves behind
    const again = await start(['--ephemeral', mnt])
    await fs.writeFile(join(mnt, 'y'), 'again')
    expect(await fs.readFile(join(mnt, 'y'), 'utf8')).toBe('again')
    await again.stop()
  })

  it('a persistent volume keeps its files across mounts (passphrase file)', async () => {
    const cipher = join(work, 'persist')
    await fs.mkdir(cipher)
    ;(await createVolume(cipher, Buffer.from('persist pw'), { scryptLogN: 10 })).close()
    await fs.writeFile(join(work, 'persist.pass'), 'persist pw\n')
    const mnt = await mountpoint('persist-mnt')
    const args = ['--volume', cipher, mnt, '--passphrase-file', join(work, 'persist.pass')]
    const m1 = await start(args)
    expect(await list()).toEqual([expect.objectContaining({ kind: 'volume', backing: cipher })])
    await fs.mkdir(join(mnt, 'd'))
    await fs.writeFile(join(mnt, 'd', 'kept'), 'kept across mounts')
    await m1.stop()
    expect(await fs.readdir(cipher)).toContain('gocryptfs.conf') // the backing stays
    const m2 = await start(args)
    expect(await fs.readFile(join(mnt, 'd', 'kept'), 'utf8')).toBe('kept across mounts')
    await m2.stop()
  })
})
