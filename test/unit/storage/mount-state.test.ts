/**
 * The mount state directory: entries round-trip, an entry whose mountpoint is not a coffer mount
 * is stale, malformed and oversized entries are skipped (never a crash), and the state dir follows
 * $COFFER_MOUNT_STATE_DIR / $XDG_RUNTIME_DIR. Live vs crashed servers (pid checks) need real
 * mounts: test/e2e/mount-cli.test.ts.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  listMounts,
  mountStateDir,
  processStartTime,
  removeMountEntry,
  writeMountEntry,
  type MountEntry,
} from '../../../lib/storage/mount/state.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-mount-state-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const entry = async (o: Partial<MountEntry> = {}): Promise<MountEntry> => ({
  pid: process.pid,
  pidStart: (await processStartTime(process.pid))!,
  mountpoint: '/not/a/mount',
  backing: '/b',
  kind: 'volume',
  startedAt: new Date(0).toISOString(),
  ...o,
})

describe('mount state', () => {
  it('state dir: explicit, XDG runtime dir, or /run for root', () => {
    expect(mountStateDir({ COFFER_MOUNT_STATE_DIR: '/x' })).toBe('/x')
    expect(mountStateDir({ XDG_RUNTIME_DIR: '/run/user/7' })).toBe('/run/user/7/coffer/mounts')
    if (process.getuid?.() === 0) expect(mountStateDir({})).toBe('/run/coffer/mounts')
  })

  it('an entry round-trips (mode 0600) and is stale when nothing is mounted there', async () => {
    const d = join(dir, 'a')
    const e = await entry()
    await writeMountEntry(d, e)
    const files = await readdir(d)
    expect(files).toHaveLength(1)
    expect((await stat(join(d, files[0]!))).mode & 0o777).toBe(0o600)
    expect(await listMounts(d)).toEqual([{ ...e, stale: true }])
    await removeMountEntry(d, e.mountpoint)
    expect(await listMounts(d)).toEqual([])
  })

  it('malformed, oversized and foreign files are skipped', async () => {
    const d = join(dir, 'c')
    await writeMountEntry(d, await entry())
    await writeFile(join(d, `${'0'.repeat(32)}.json`), '{"pid": "not a number"}')
    await writeFile(join(d, `${'1'.repeat(32)}.json`), 'not json at all')
    await writeFile(join(d, `${'2'.repeat(32)}.json`), ' '.repeat(100_000))
    await writeFile(join(d, 'README'), 'ignored')
    expect(await listMounts(d)).toHaveLength(1)
    expect(await listMounts(join(dir, 'missing'))).toEqual([])
  })
})
