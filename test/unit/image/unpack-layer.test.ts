import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { unpackLayer } from '../../../lib/image/unpack/index.js'
import { T0, tarBuffer, tarStream, type TarEntry } from '../../helpers/tar-builder.js'

let base: string
let root: string

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'coffer-unpack-'))
  root = join(base, 'root')
  await mkdir(root)
})
afterEach(async () => {
  await rm(base, { recursive: true, force: true })
})

const isRoot = process.getuid?.() === 0
/** Root-only cases run whenever CI=true, so a CI runner without root fails them instead of skipping. */
const rootOrCi = isRoot || process.env.CI === 'true'
const unpack = (entries: TarEntry[], o: Partial<Parameters<typeof unpackLayer>[2]> = {}) =>
  unpackLayer(tarStream(entries), root, { whiteouts: 'apply', ...o })

describe('unpackLayer: ordinary entries', () => {
  it('writes files, dirs, symlinks, hardlinks with modes, owners and mtimes', async () => {
    const r = await unpack([
      { name: 'etc/', type: 'dir', mode: 0o750 },
      { name: 'etc/passwd', content: 'root:x:0:0\n', mode: 0o4755, uid: 1000, gid: 1001 },
      { name: 'etc/hard', type: 'link', target: 'etc/passwd' },
      { name: 'etc/abs', type: 'symlink', target: '/etc/shadow' },
      { name: 'etc/up', type: 'symlink', target: '../../../../outside' },
      { name: 'tmp/', type: 'dir', mode: 0o1777 },
      { name: 'implicit/parent/file', content: 'x' },
    ])
    expect(r.entries).toBe(7)
    const st = await lstat(join(root, 'etc/passwd'))
    expect(st.mode & 0o7777).toBe(0o4755)
    expect(st.mtime.getTime()).toBe(T0.getTime())
    if (isRoot) expect([st.uid, st.gid]).toEqual([1000, 1001])
    expect((await lstat(join(root, 'etc/hard'))).ino).toBe(st.ino)
    expect(await readlink(join(root, 'etc/abs'))).toBe('/etc/shadow')
    expect(await readlink(join(root, 'etc/up'))).toBe('../../../../outside')
    expect((await lstat(join(root, 'tmp'))).mode & 0o7777).toBe(0o1777)
    expect((await lstat(join(root, 'etc'))).mtime.getTime()).toBe(T0.getTime())
    expect((await lstat(join(root, 'implicit/parent'))).mode & 0o777).toBe(0o755)
  })

  it('handles PAX and GNU long names and long link targets', async () => {
    const long = `${'d'.repeat(150)}/${'f'.repeat(200)}`
    const r = await unpack([
      { name: long, content: 'long' },
      { name: `${'s'.repeat(180)}`, type: 'symlink', target: `/${'t'.repeat(300)}` },
      { name: 'h'.repeat(120), type: 'link', target: long },
    ])
    expect(r.entries).toBe(3)
    expect(await readFile(join(root, long), 'utf8')).toBe('long')
    expect(await readlink(join(root, 's'.repeat(180)))).toBe(`/${'t'.repeat(300)}`)
    expect((await lstat(join(root, 'h'.repeat(120)))).ino).toBe((await lstat(join(root, long))).ino)
  })

  it('reads GNU long names and long link targets (GNU tar --format=gnu: L/K entries)', async () => {
    const src = join(base, 'src')
    const dir = `${'g'.repeat(120)}/${'n'.repeat(130)}`
    await mkdir(join(src, dir), { recursive: true })
    await writeFile(join(src, dir, 'file'), 'gnu')
    const { symlink, link } = await import('node:fs/promises')
    await symlink(`/${'t'.repeat(200)}`, join(src, 'sym'))
    await link(join(src, dir, 'file'), join(src, 'hard'))
    const { execFileSync } = await import('node:child_process')
    const tar = execFileSync('tar', [
      '--format=gnu',
      '-C',
      src,
      '-cf',
      '-',
      dir.split('/')[0] as string,
      'sym',
      'hard',
    ])
    expect(tar.includes(Buffer.from('././@LongLink'))).toBe(true) // really the GNU format
    await unpackLayer(Readable.from([tar]), root, { whiteouts: 'apply' })
    expect(await readFile(join(root, dir, 'file'), 'utf8')).toBe('gnu')
    expect(await readlink(join(root, 'sym'))).toBe(`/${'t'.repeat(200)}`)
    expect((await lstat(join(root, 'hard'))).ino).toBe((await lstat(join(root, dir, 'file'))).ino)
  })

  it('applies PAX uid/gid/mtime overrides and records xattrs with a warning', async () => {
    const r = await unpack([
      {
        name: 'bin/ping',
        content: 'elf',
        pax: { uid: '4242', gid: '4343', mtime: '1600000000.5', 'SCHILY.xattr.user.test': 'v' },
      },
    ])
    const st = await lstat(join(root, 'bin/ping'))
    expect(st.mtime.getTime()).toBe(1600000000500)
    if (isRoot) expect([st.uid, st.gid]).toEqual([4242, 4343])
    expect(r.xattrs['bin/ping']).toEqual({ 'user.test': Buffer.from('v').toString('base64') })
    expect(r.warnings.map((w) => w.code)).toContain('XATTR_NOT_APPLIED')
  })

  it('replaces a file by a directory and a directory by a file', async () => {
    await unpack([
      { name: 'a', content: 'file' },
      { name: 'b/c', content: 'in dir' },
    ])
    await unpack([
      { name: 'a/', type: 'dir' },
      { name: 'a/x', content: 'x' },
      { name: 'b', content: 'now a file' },
    ])
    expect((await lstat(join(root, 'a'))).isDirectory()).toBe(true)
    expect(await readFile(join(root, 'b'), 'utf8')).toBe('now a file')
  })

  it('applies whiteouts and opaque dirs to lower content only', async () => {
    await unpack([
      { name: 'keep', content: '1' },
      { name: 'gone', content: '1' },
      { name: 'tree/a/b', content: '1' },
      { name: 'opq/lower1', content: '1' },
      { name: 'opq/sub/lower2', content: '1' },
    ])
    const r = await unpack([
      { name: 'opq/new', content: '2' },
      { name: 'opq/sub/', type: 'dir' },
      { name: 'opq/sub/new2', content: '2' },
      { name: '.wh.gone', content: '' },
      { name: '.wh.tree', content: '' },
      { name: 'opq/.wh..wh..opq', content: '' }, // marker after the children: still applies
      { name: 'mine', content: 'x' },
      { name: '.wh.mine', content: '' },
    ])
    expect((await readdir(root)).sort()).toEqual(['keep', 'mine', 'opq'])
    expect((await readdir(join(root, 'opq'))).sort()).toEqual(['new', 'sub'])
    expect(await readdir(join(root, 'opq/sub'))).toEqual(['new2'])
    expect(r.whiteouts).toEqual(['gone', 'tree', 'mine'])
    expect(r.opaqueDirs).toEqual(['opq'])
    expect(r.warnings.map((w) => w.code)).toContain('WHITEOUT_OF_OWN_ENTRY')
  })

  it('records whiteouts without touching the disk in record mode', async () => {
    await writeFile(join(root, 'lower'), 'x')
    const r = await unpack(
      [
        { name: '.wh.lower', content: '' },
        { name: 'd/.wh..wh..opq', content: '' },
      ],
      {
        whiteouts: 'record',
      },
    )
    expect(r.whiteouts).toEqual(['lower'])
    expect(r.opaqueDirs).toEqual(['d'])
    expect(await readdir(root)).toEqual(['lower'])
  })

  it.runIf(rootOrCi)(
    'overlay mode: whiteouts become char 0:0 devices, opaque dirs get the xattr',
    async () => {
      const r = await unpack(
        [
          { name: 'd/.wh.x', content: '' },
          { name: 'o/.wh..wh..opq', content: '' },
          { name: 'o/new', content: '1' },
        ],
        { whiteouts: 'overlay' },
      )
      const st = await lstat(join(root, 'd/x'))
      expect(st.isCharacterDevice()).toBe(true)
      expect(st.rdev).toBe(0)
      expect(r.opaqueDirs).toEqual(['o'])
      const { execFileSync } = await import('node:child_process')
      const out = execFileSync('getfattr', [
        '-h',
        '-n',
        'trusted.overlay.opaque',
        '--only-values',
        join(root, 'o'),
      ])
      expect(out.toString()).toBe('y')
    },
  )

  it('records a hardlink to a lower layer in overlay/record modes', async () => {
    const r = await unpack([{ name: 'l', type: 'link', target: 'usr/bin/lower' }], { whiteouts: 'record' })
    expect(r.externalLinks).toEqual([{ path: 'l', target: 'usr/bin/lower' }])
  })

  it('creates devices and FIFOs only when allowed', async () => {
    const entries: TarEntry[] = [
      { name: 'dev/null', type: 'char', major: 1, minor: 3 },
      { name: 'run/fifo', type: 'fifo' },
    ]
    const skipped = await unpack(entries)
    expect(skipped.warnings.filter((w) => w.code === 'DEVICE_SKIPPED')).toHaveLength(2)
    await expect(lstat(join(root, 'dev/null'))).rejects.toThrow(/ENOENT/)
    await unpack(entries, { allowDevices: true })
    expect((await lstat(join(root, 'run/fifo'))).isFIFO()).toBe(true)
    if (isRoot) expect((await lstat(join(root, 'dev/null'))).isCharacterDevice()).toBe(true)
  })

  it('consumes trailing data after the end-of-archive blocks', async () => {
    const tar = Buffer.concat([await tarBuffer([{ name: 'f', content: 'x' }]), Buffer.alloc(10 * 512)])
    const r = await unpackLayer(Readable.from([tar]), root, { whiteouts: 'apply' })
    expect(r.entries).toBe(1)
  })
})
