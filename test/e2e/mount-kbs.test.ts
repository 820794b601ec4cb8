/**
 * Volume keys from a KBS: the resource kbs:///default/volume/data holds the volume's passphrase.
 * `coffer fs init --key` creates the volume with it after attesting (sample TEE), `coffer mount
 * --volume --key` unlocks it the same way, and because the resource is an ordinary gocryptfs
 * passphrase, Debian gocryptfs opens the volume with the same bytes. A resource holding another
 * passphrase is ERR_STORAGE_WRONG_PASSPHRASE with nothing mounted; a resource the policy denies is
 * the KBS's own coded error.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { coffer } from '../helpers/coffer.js'
import { spawnKbsServe, type KbsProcess } from '../helpers/kbs.js'
import { isMounted, startCofferMount, type CofferMount } from '../helpers/coffer-mount.js'
import { mountGocryptfs } from '../helpers/gocryptfs.js'

const POLICY = JSON.stringify({
  version: 'coffer.dev/kbs-resource-policy/v1',
  rules: [
    {
      name: 'sample guests get volume keys',
      effect: 'allow',
      resources: ['default/volume/*'],
      when: 'tee == "sample"',
    },
  ],
})
const PASS = 'volume passphrase from the KBS'

describe('coffer mount --key kbs:///…', () => {
  let dir: string
  let kbs: KbsProcess
  let url: string
  let kbsFlags: string[]
  let env: NodeJS.ProcessEnv
  let mount: CofferMount | undefined

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-mount-kbs-'))
    env = { COFFER_MOUNT_STATE_DIR: join(dir, 'state') }
    kbs = await spawnKbsServe(dir, POLICY)
    url = kbs.url
    const admin = kbs.adminArgs
    await writeFile(join(dir, 'pass'), `${PASS}\n`)
    await writeFile(join(dir, 'other'), 'some other passphrase\n')
    for (const [uri, file] of [
      ['kbs:///default/volume/data', 'pass'],
      ['kbs:///default/volume/other', 'other'],
      ['kbs:///secret/volume/data', 'pass'],
    ] as const) {
      const r = await coffer(['kbs', 'put-resource', uri, '--file', join(dir, file), ...admin])
      expect(r.code, r.stderr).toBe(0)
    }
    kbsFlags = ['--kbs-url', url, '--attester', 'sample']
  }, 60_000)

  afterAll(async () => {
    await mount?.stop()
    await kbs?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('fs init --key and mount --key use the KBS passphrase; gocryptfs opens the volume with it', async () => {
    const vol = join(dir, 'vol')
    const mnt = join(dir, 'mnt')
    await mkdir(mnt)
    const init = await coffer([
      'fs',
      'init',
      vol,
      '--key',
      'kbs:///default/volume/data',
      '--scryptn',
      '10',
      ...kbsFlags,
    ])
    expect(init.code, init.stderr).toBe(0)
    mount = await startCofferMount(
      ['--volume', vol, mnt, '--key', 'kbs:///default/volume/data', ...kbsFlags],
      { env },
    )
    await writeFile(join(mnt, 'hello.txt'), 'sealed by a KBS-held passphrase\n')
    await mount.stop()
    expect(mount.stderr()).not.toContain(PASS)

    const g = await mountGocryptfs(vol, mnt, join(dir, 'pass'))
    try {
      expect(await readFile(join(mnt, 'hello.txt'), 'utf8')).toBe('sealed by a KBS-held passphrase\n')
    } finally {
      await g.unmount()
    }
  })

  it('a resource with another passphrase is ERR_STORAGE_WRONG_PASSPHRASE; a denied one is the KBS error; nothing mounted', async () => {
    const vol = join(dir, 'vol')
    const mnt = join(dir, 'mnt')
    const wrong = await coffer(
      ['mount', '--volume', vol, mnt, '--key', 'kbs:///default/volume/other', ...kbsFlags],
      { env },
    )
    expect(wrong.stderr).toContain('ERR_STORAGE_WRONG_PASSPHRASE')
    expect(wrong.code).toBe(6)
    const denied = await coffer(
      ['mount', '--volume', vol, mnt, '--key', 'kbs:///secret/volume/data', ...kbsFlags],
      { env },
    )
    expect(denied.stderr).toContain('ERR_KBS_DENIED')
    expect(denied.code).toBe(7)
    expect(await isMounted(mnt)).toBe(false)
  })
})
