/**
 * `coffer fs init | info | fsck | passwd` as a user runs them, with the real gocryptfs on the same
 * volumes, and a check that the master key never reaches the disk (or the output) unwrapped.
 */
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { coffer, type CofferRun } from '../helpers/coffer.js'
import { dumpMasterKey, mountGocryptfs, runTool, type GocryptfsMount } from '../helpers/gocryptfs.js'
import { bytes } from '../helpers/sample-tree.js'

let work: string
let pass: string
const outputs: CofferRun[] = []
const mounts: GocryptfsMount[] = []

async function run(args: string[]): Promise<CofferRun> {
  const r = await coffer(args)
  outputs.push(r)
  return r
}

function jsonOf(r: CofferRun): Record<string, unknown> {
  const lines = r.json()
  expect(lines.length).toBeGreaterThan(0)
  return lines[0]!
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-fscli-'))
  pass = join(work, 'pass.txt')
  // Only the first line counts, for gocryptfs -passfile and for coffer alike.
  await writeFile(pass, 'first line\nignored\n')
})
afterEach(async () => {
  for (const m of mounts.splice(0)) await m.unmount()
})
afterAll(async () => {
  for (const m of mounts.splice(0)) await m.unmount()
  await rm(work, { recursive: true, force: true })
})

describe('coffer fs', () => {
  it.each(['init', 'info', 'fsck', 'passwd'])(
    'fs %s --help explains the command with examples',
    async (sub) => {
      const r = await coffer(['fs', sub, '--help'])
      expect(r.code).toBe(0)
      expect(r.stdout).toContain(`Usage: coffer fs ${sub}`)
      expect(r.stdout).toContain(`Examples:\n  coffer fs ${sub}`)
    },
  )

  it('init makes a volume gocryptfs mounts with the same passphrase file; fsck and info read it', async () => {
    const vol = join(work, 'vol')
    const init = await run(['fs', 'init', vol, '--passphrase-file', pass, '--scryptn', '10', '--json'])
    expect(init.code).toBe(0)
    expect(jsonOf(init)).toMatchObject({
      backing: vol,
      version: 2,
      featureFlags: ['HKDF', 'GCMIV128', 'DirIV', 'EMENames', 'LongNames', 'Raw64'],
      scrypt: { N: 1024, R: 8, P: 1, KeyLen: 32 },
    })
    expect((await readdir(vol)).sort()).toEqual(['gocryptfs.conf', 'gocryptfs.diriv'])

    const mnt = join(work, 'mnt')
    await mkdir(mnt)
    const m = await mountGocryptfs(vol, mnt, pass)
    mounts.push(m)
    await mkdir(join(mnt, 'dir'))
    await writeFile(join(mnt, 'dir', 'data.bin'), bytes('cli', 20_000))
    await writeFile(join(mnt, 'x'.repeat(200)), 'long name')
    await m.unmount()

    const fsck = await run(['fs', 'fsck', vol, '--passphrase-file', pass, '--json'])
    expect(fsck.code).toBe(0)
    expect(jsonOf(fsck)).toMatchObject({ dirs: 2, files: 2, bytes: 20_009, problems: [] })
    const human = await run(['fs', 'fsck', vol, '--passphrase-file', pass])
    expect(human.stdout).toContain('fsck: no problems found')

    const info = await run(['fs', 'info', vol])
    expect(info.code).toBe(0)
    expect(info.stdout).toContain('FeatureFlags:  HKDF GCMIV128 DirIV EMENames LongNames Raw64')
    expect(info.stdout).toContain('N=1024 R=8 P=1 KeyLen=32')
  })

  it('fsck names the damaged file and block, and exits 9', async () => {
    const vol = join(work, 'damaged')
    expect((await run(['fs', 'init', vol, '--passphrase-file', pass, '--scryptn', '10'])).code).toBe(0)
    const mnt = join(work, 'mnt-damaged')
    await mkdir(mnt)
    const m = await mountGocryptfs(vol, mnt, pass)
    mounts.push(m)
    await writeFile(join(mnt, 'victim'), bytes('v', 3 * 4096))
    await writeFile(join(mnt, 'fine'), 'ok')
    await m.unmount()
    const victim = (await readdir(vol)).filter((n) => !n.startsWith('gocryptfs.'))
    for (const n of victim) {
      const raw = await readFile(join(vol, n))
      if (raw.length < 1000) continue
      raw[18 + 2 * 4128 + 50]! ^= 1
      await writeFile(join(vol, n), raw)
    }
    await writeFile(join(vol, 'AAAAAAAAAAAAAAAAAAAAAA'), 'planted')
    const fsck = await run(['fs', 'fsck', vol, '--passphrase-file', pass, '--json'])
    expect(fsck.code).toBe(9)
    const report = jsonOf(fsck)
    expect(report.problems).toEqual([
      { path: '/AAAAAAAAAAAAAAAAAAAAAA', problem: expect.stringContaining('undecodable') as unknown },
      { path: '/victim', problem: expect.stringMatching(/^block 2: .*ERR_STORAGE_CORRUPT/) as unknown },
    ])
    expect(fsck.stderr).toContain('[ERR_STORAGE_FSCK_FAILED]')
    // gocryptfs agrees that the volume is damaged.
    expect((await runTool('gocryptfs', ['-fsck', '-passfile', pass, vol])).code).not.toBe(0)
  })

  it('passwd re-wraps the key: the new passphrase works in gocryptfs and coffer, the old one in neither', async () => {
    const vol = join(work, 'pw')
    expect((await run(['fs', 'init', vol, '--passphrase-file', pass, '--scryptn', '10'])).code).toBe(0)
    const newPass = join(work, 'new.txt')
    await writeFile(newPass, 'brand new\n')
    const r = await run([
      'fs',
      'passwd',
      vol,
      '--passphrase-file',
      pass,
      '--new-passphrase-file',
      newPass,
      '--json',
    ])
    expect(r.code).toBe(0)
    expect(jsonOf(r)).toEqual({ backing: vol, changed: true })
    expect((await stat(join(vol, 'gocryptfs.conf'))).mode & 0o777).toBe(0o400)
    expect((await run(['fs', 'fsck', vol, '--passphrase-file', newPass])).code).toBe(0)
    const old = await run(['fs', 'fsck', vol, '--passphrase-file', pass])
    expect(old.code).toBe(6)
    expect(old.stderr).toContain('wrong passphrase')
    expect(old.stderr).toContain('[ERR_STORAGE_WRONG_PASSPHRASE]')
    const mnt = join(work, 'mnt-pw')
    await mkdir(mnt)
    expect((await runTool('gocryptfs', ['-q', '-passfile', pass, vol, mnt])).code).toBe(12)
    mounts.push(await mountGocryptfs(vol, mnt, newPass))
  })

  it('refuses bad input with coded errors and exit codes', async () => {
    const cases: [string[], number, string][] = [
      [['fs', 'info', join(work, 'nowhere')], 3, 'ERR_STORAGE_NOT_A_VOLUME'],
      [['fs', 'init', join(work, 'vol'), '--passphrase-file', pass], 4, 'ERR_STORAGE_VOLUME_EXISTS'],
      [['fs', 'init', join(work, 'new1'), '--passphrase-file', join(work, 'missing')], 3, 'ERR_NOT_FOUND'],
      [['fs', 'init', join(work, 'new2'), '--passphrase-file', pass, '--scryptn', '40'], 2, 'ERR_USAGE'],
    ]
    const empty = join(work, 'empty.txt')
    await writeFile(empty, '\nsecond line\n')
    cases.push([
      ['fs', 'init', join(work, 'new3'), '--passphrase-file', empty],
      2,
      'ERR_STORAGE_PASSPHRASE_EMPTY',
    ])
    const bad = join(work, 'badconf')
    await mkdir(bad)
    await writeFile(join(bad, 'gocryptfs.conf'), '{"Version": 2, "FeatureFlags": ["HKDF"]}')
    cases.push([['fs', 'info', bad], 2, 'ERR_STORAGE_CONFIG_INVALID'])
    for (const [args, code, errCode] of cases) {
      const r = await run(args)
      expect({ args, code: r.code }).toEqual({ args, code })
      expect(r.stderr).toContain(`[${errCode}]`)
    }
    const usage = await run(['fs', 'fsck', join(work, 'vol')])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain('--passphrase-file')
  })

  it('never writes the master key anywhere but wrapped in gocryptfs.conf, nor prints it', async () => {
    // Runs last: every volume above was made, mounted, checked and re-keyed by now.
    const vol = join(work, 'vol')
    const key = Buffer.from(await dumpMasterKey(join(vol, 'gocryptfs.conf'), 'first line'), 'hex')
    expect(key.length).toBe(32)
    const forms = [
      key,
      Buffer.from(key.toString('hex')),
      Buffer.from(key.toString('base64')),
      Buffer.from(key.toString('base64url').slice(0, 40)),
    ]
    const files: string[] = []
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(dir, e.name))
        else if (e.isFile()) files.push(join(dir, e.name))
      }
    }
    await walk(work)
    expect(files.length).toBeGreaterThan(10)
    for (const f of files) {
      const content = await readFile(f)
      for (const form of forms) expect({ f, found: content.includes(form) }).toEqual({ f, found: false })
    }
    for (const r of outputs)
      for (const form of forms) expect(Buffer.from(r.stdout + r.stderr).includes(form)).toBe(false)
  })
})
