/**
 * `coffer mount --ephemeral`: the random master key exists only in the serving process's memory.
 * The test learns it through the test-only descriptor hook (COFFER_TEST_EPHEMERAL_KEY_FD, a pipe,
 * never a file), proves it is the real key by decrypting the backing directory with it, then
 * checks it is nowhere else: not in the server's argv or environment, not in any file of the
 * backing or state directory (raw, hex or base64), and there is no gocryptfs.conf at all. At
 * unmount the backing directory and the state entry are gone.
 */
import * as fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ephemeralVolume } from '../../lib/storage/open-volume.js'
import { isMounted, startCofferMount, type CofferMount } from '../helpers/coffer-mount.js'

let work: string
let mount: CofferMount | undefined

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'coffer-fuse-ephemeral-'))
  await fs.mkdir(join(work, 'mnt'))
})
afterAll(async () => {
  await mount?.stop()
  await fs.rm(work, { recursive: true, force: true })
})

/** Every regular file under `dir`, with its contents. */
async function allFiles(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = []
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    const p = join(e.parentPath, e.name)
    if (e.isFile()) out.push(await fs.readFile(p))
    else if (e.isSymbolicLink()) out.push(Buffer.from(await fs.readlink(p)))
    out.push(Buffer.from(e.name))
  }
  return out
}

it('the key is only in memory; the backing and state are removed at unmount', async () => {
  const backing = join(work, 'backing')
  const state = join(work, 'state')
  mount = await startCofferMount(['--ephemeral', join(work, 'mnt'), '--backing', backing], {
    env: { COFFER_MOUNT_STATE_DIR: state },
    exposeKey: true,
  })
  expect(mount.key).toMatch(/^[0-9a-f]{64}$/)
  const key = Buffer.from(mount.key!, 'hex')

  // === the mount works, and the hook's key really is the volume's key
  await fs.writeFile(join(mount.mountpoint, 'secret.txt'), 'ephemeral data\n')
  await fs.mkdir(join(mount.mountpoint, 'dir'))
  await fs.writeFile(join(mount.mountpoint, 'dir', 'x'), Buffer.alloc(10_000, 7))
  const vol = await ephemeralVolume(backing, key, { create: false })
  expect((await vol.readFile('/secret.txt')).toString()).toBe('ephemeral data\n')
  vol.close()

  // === and it is nowhere else
  const forms = [key, Buffer.from(key.toString('hex')), Buffer.from(key.toString('base64'))]
  const places: [string, Buffer][] = [
    ['cmdline', await fs.readFile(`/proc/${mount.pid}/cmdline`)],
    ['environ', await fs.readFile(`/proc/${mount.pid}/environ`)],
    ...(await allFiles(backing)).map((b): [string, Buffer] => ['backing', b]),
    ...(await allFiles(state)).map((b): [string, Buffer] => ['state', b]),
  ]
  expect(places.filter(([w]) => w === 'state').length).toBeGreaterThan(0)
  for (const [where, content] of places)
    for (const form of forms) expect(content.includes(form), `key found in ${where}`).toBe(false)
  expect(await fs.readdir(backing)).not.toContain('gocryptfs.conf')
  expect((await fs.stat(backing)).mode & 0o777).toBe(0o700)

  // === unmount: the ciphertext and the state entry go too
  await mount.stop()
  expect(await mount.exited).toBe(0)
  expect(await isMounted(mount.mountpoint)).toBe(false)
  await expect(fs.stat(backing)).rejects.toMatchObject({ code: 'ENOENT' })
  expect(await fs.readdir(state)).toEqual([])
})
