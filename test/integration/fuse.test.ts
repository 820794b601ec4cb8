/**
 * What applications do through a coffer FUSE mount, each step also done on a plain directory:
 * results and errno values must be the same (ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR,
 * ENAMETOOLONG, …). Also metadata (chmod, chown, utimens with either time alone, tar -x and cp -p
 * times, statfs, fsync), partial-block I/O,
 * concurrent requests, and that nothing is left open in the server afterwards.
 */
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import * as fs from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCofferMount, type CofferMount } from '../helpers/coffer-mount.js'

let work: string
let plain: string
let mnt: string
let mount: CofferMount | undefined

beforeAll(async () => {
  work = await fs.mkdtemp(join(tmpdir(), 'coffer-fuse-'))
  plain = join(work, 'plain')
  mnt = join(work, 'mnt')
  await fs.mkdir(plain)
  await fs.mkdir(mnt)
  mount = await startCofferMount(['--ephemeral', mnt], {
    env: { COFFER_MOUNT_STATE_DIR: join(work, 'state') },
  })
})
afterAll(async () => {
  await mount?.stop()
  await fs.rm(work, { recursive: true, force: true })
})

async function outcome(fn: () => Promise<unknown>): Promise<string> {
  try {
    const v = await fn()
    if (Buffer.isBuffer(v)) return `ok ${createHash('sha256').update(v).digest('hex')} ${v.length}`
    return `ok ${JSON.stringify(v ?? null)}`
  } catch (err) {
    return `err ${(err as NodeJS.ErrnoException).code}`
  }
}

/** Runs one step on both trees; returns the (equal) outcome. */
async function both(step: (root: string) => Promise<unknown>): Promise<string> {
  const want = await outcome(() => step(plain))
  const got = await outcome(() => step(mnt))
  expect(got).toBe(want)
  return got
}

describe('same results and errno values as a plain directory', () => {
  it('files, directories, renames, links and their errors', async () => {
    const at = (r: string, p: string): string => join(r, p)
    expect(await both((r) => fs.writeFile(at(r, 'f'), 'hello'))).toBe('ok null')
    expect(await both((r) => fs.readFile(at(r, 'missing')))).toBe('err ENOENT')
    expect(await both((r) => fs.writeFile(at(r, 'f'), 'x', { flag: 'wx' }))).toBe('err EEXIST')
    expect(await both((r) => fs.mkdir(at(r, 'd')))).toBe('ok null')
    expect(await both((r) => fs.mkdir(at(r, 'd')))).toBe('err EEXIST')
    expect(await both((r) => fs.writeFile(at(r, 'd/in'), 'inside'))).toBe('ok null')
    expect(await both((r) => fs.rmdir(at(r, 'd')))).toBe('err ENOTEMPTY')
    expect(await both((r) => fs.unlink(at(r, 'd')))).toMatch(/^err E(ISDIR|PERM)$/)
    expect(await both((r) => fs.readFile(at(r, 'd')))).toBe('err EISDIR')
    expect(await both((r) => fs.writeFile(at(r, 'f/x'), ''))).toBe('err ENOTDIR')
    expect(await both((r) => fs.stat(at(r, 'f/x')))).toBe('err ENOTDIR')
    expect(await both((r) => fs.writeFile(at(r, 'n'.repeat(256)), ''))).toBe('err ENAMETOOLONG')
    expect(await both((r) => fs.writeFile(at(r, 'n'.repeat(255)), 'longest name'))).toBe('ok null')
    // rename over an existing file replaces it; over a non-empty directory fails
    expect(await both((r) => fs.writeFile(at(r, 'g'), 'gg'))).toBe('ok null')
    expect(await both((r) => fs.rename(at(r, 'g'), at(r, 'f')))).toBe('ok null')
    expect(await both((r) => fs.readFile(at(r, 'f'), 'utf8'))).toBe('ok "gg"')
    expect(await both((r) => fs.mkdir(at(r, 'e')))).toBe('ok null')
    expect(await both((r) => fs.rename(at(r, 'e'), at(r, 'd')))).toMatch(/^err E(NOTEMPTY|EXIST)$/)
    expect(await both((r) => fs.rename(at(r, 'd'), at(r, 'e')))).toBe('ok null')
    expect(await both((r) => fs.rename(at(r, 'f'), at(r, 'e')))).toBe('err EISDIR')
    expect(await both((r) => fs.rename(at(r, 'e'), at(r, 'e/sub')))).toBe('err EINVAL')
    // hard links share contents and count links
    expect(await both((r) => fs.link(at(r, 'f'), at(r, 'e/hard')))).toBe('ok null')
    expect(await both((r) => fs.link(at(r, 'f'), at(r, 'e/hard')))).toBe('err EEXIST')
    expect(await both((r) => fs.appendFile(at(r, 'e/hard'), '+more'))).toBe('ok null')
    expect(await both((r) => fs.readFile(at(r, 'f'), 'utf8'))).toBe('ok "gg+more"')
    expect(await both(async (r) => (await fs.stat(at(r, 'f'))).nlink)).toBe('ok 2')
    // symlinks, relative and dangling
    expect(await both((r) => fs.symlink('e/hard', at(r, 'sl')))).toBe('ok null')
    expect(await both((r) => fs.readFile(at(r, 'sl'), 'utf8'))).toBe('ok "gg+more"')
    expect(await both((r) => fs.symlink('nowhere', at(r, 'dangling')))).toBe('ok null')
    expect(await both((r) => fs.readlink(at(r, 'dangling')))).toBe('ok "nowhere"')
    expect(await both((r) => fs.readFile(at(r, 'dangling')))).toBe('err ENOENT')
    expect(await both(async (r) => (await fs.lstat(at(r, 'sl'))).size)).toBe('ok 6')
    // empty directories
    expect(await both((r) => fs.rmdir(at(r, 'e/in')))).toBe('err ENOTDIR')
    expect(await both((r) => fs.mkdir(at(r, 'empty')))).toBe('ok null')
    expect(await both(async (r) => (await fs.readdir(at(r, 'empty'))).length)).toBe('ok 0')
    expect(await both((r) => fs.rmdir(at(r, 'empty')))).toBe('ok null')
    expect(await both(async (r) => (await fs.readdir(r)).sort())).toMatch(/^ok /)
  })

  it('partial blocks, appends, truncate and extend', async () => {
    const data = randomBytes(3 * 4096 + 5)
    const f = (r: string): string => join(r, 'blocks')
    await both((r) => fs.writeFile(f(r), data))
    for (const [pos, len] of [
      [0, 1],
      [4095, 2],
      [4000, 5000],
      [12_290, 100],
      [20_000, 10],
    ] as const) {
      await both(async (r) => {
        const fh = await fs.open(f(r), 'r+')
        try {
          await fh.write(Buffer.alloc(len, pos % 255), 0, len, pos)
        } finally {
          await fh.close()
        }
      })
    }
    await both((r) => fs.appendFile(f(r), 'tail'))
    await both((r) => fs.truncate(f(r), 9000))
    await both((r) => fs.truncate(f(r), 70_000))
    await both((r) => fs.truncate(f(r), 4096))
    expect(await both((r) => fs.readFile(f(r)))).toMatch(/^ok [0-9a-f]{64} 4096$/)
    // O_TRUNC on open
    await both((r) => fs.writeFile(f(r), 'short'))
    expect(await both((r) => fs.readFile(f(r), 'utf8'))).toBe('ok "short"')
  })
})

describe('metadata', () => {
  it('chmod, chown, utimens and fsync pass through', async () => {
    const f = join(mnt, 'meta')
    await fs.writeFile(f, 'm')
    await fs.chmod(f, 0o640)
    expect((await fs.stat(f)).mode & 0o7777).toBe(0o640)
    await fs.chown(f, 1234, 5678)
    const st = await fs.stat(f)
    expect([st.uid, st.gid]).toEqual([1234, 5678])
    const atime = new Date('2021-05-06T07:08:09Z')
    const mtime = new Date('2019-01-02T03:04:05.678Z')
    await fs.utimes(f, atime, mtime)
    const times = await fs.stat(f)
    expect([times.atime.getTime(), times.mtime.getTime()]).toEqual([atime.getTime(), mtime.getTime()])
    const fh = await fs.open(f, 'r+')
    await fh.write('n', 1)
    await fh.sync()
    await fh.datasync()
    await fh.close()
    expect(await fs.readFile(f, 'utf8')).toBe('mn')
  })

  it('one time at a time (touch -m, touch -a), tar -x and cp -p keep times as a plain directory does', async () => {
    const run = (cmd: string, args: string[]): Promise<void> =>
      new Promise((resolve, reject) =>
        execFile(cmd, args, (err, _out, stderr) =>
          err ? reject(new Error(`${cmd}: ${stderr}`)) : resolve(),
        ),
      )
    const times = async (p: string): Promise<number[]> => {
      const st = await fs.stat(p)
      return [st.atimeMs, st.mtimeMs]
    }
    // Sources outside both trees, with whole-second times (tar keeps seconds).
    const src = join(work, 'times-src')
    await fs.mkdir(join(src, 'tree'), { recursive: true })
    await fs.writeFile(join(src, 'tree', 'a.txt'), 'a')
    await fs.writeFile(join(src, 'c.txt'), 'c')
    await fs.utimes(
      join(src, 'tree', 'a.txt'),
      new Date('2020-02-02T02:02:02Z'),
      new Date('2018-08-08T08:08:08Z'),
    )
    await run('tar', ['-cf', join(work, 'times.tar'), '-C', join(src, 'tree'), '.'])

    const steps: ((root: string) => Promise<unknown>)[] = [
      // utimensat with UTIME_OMIT for the other time: libfuse only passes these on with
      // flag_utime_omit_ok (native/fuse-bridge.c); fuse-native dropped them.
      async (r) => {
        await fs.writeFile(join(r, 'm'), 'm')
        await fs.utimes(join(r, 'm'), new Date('2001-01-01T00:00:00Z'), new Date('2001-01-01T00:00:00Z'))
        await run('touch', ['-m', '-d', '2002-02-03 04:05:06Z', join(r, 'm')])
        return times(join(r, 'm'))
      },
      async (r) => {
        await run('touch', ['-a', '-d', '2003-03-04 05:06:07Z', join(r, 'm')])
        return times(join(r, 'm'))
      },
      // tar sets mtime only (atime UTIME_OMIT); compare mtimes (tar's reads move atimes).
      async (r) => {
        await fs.mkdir(join(r, 'x'))
        await run('tar', ['-xf', join(work, 'times.tar'), '-C', join(r, 'x')])
        return (await fs.stat(join(r, 'x', 'a.txt'))).mtimeMs
      },
      async (r) => {
        // Reading the source moves its atime (relatime): set it again for each tree.
        await fs.utimes(
          join(src, 'c.txt'),
          new Date('2017-07-07T07:07:07Z'),
          new Date('2016-06-06T06:06:06Z'),
        )
        await run('cp', ['-p', join(src, 'c.txt'), join(r, 'c.txt')])
        return times(join(r, 'c.txt'))
      },
    ]
    for (const step of steps) expect(await both(step)).toMatch(/^ok /)
    expect((await fs.stat(join(mnt, 'x', 'a.txt'))).mtime.toISOString()).toBe('2018-08-08T08:08:08.000Z')
  })

  it('statfs reports the backing file system', async () => {
    const s = await fs.statfs(mnt)
    const b = await fs.statfs(tmpdir())
    expect(s.blocks * s.bsize).toBeCloseTo(b.blocks * b.bsize, -8)
    expect(s.bavail).toBeGreaterThan(0)
  })
})

describe('concurrency', () => {
  it('64 files written and read at once, plus 16 writers into one file, stay intact', async () => {
    const blobs = Array.from({ length: 64 }, (_, i) => randomBytes(1000 * i + 17))
    await Promise.all(blobs.map((b, i) => fs.writeFile(join(mnt, `c${i}`), b)))
    const back = await Promise.all(blobs.map((_, i) => fs.readFile(join(mnt, `c${i}`))))
    back.forEach((b, i) => expect(b.equals(blobs[i]!)).toBe(true))
    // Writers of disjoint, block-straddling ranges of one file: per-inode RMW must not lose any.
    const fh = await fs.open(join(mnt, 'shared'), 'w+')
    const pieces = Array.from({ length: 16 }, (_, i) => Buffer.alloc(3000, i + 1))
    await Promise.all(pieces.map((p, i) => fh.write(p, 0, p.length, i * 3000)))
    await fh.close()
    expect((await fs.readFile(join(mnt, 'shared'))).equals(Buffer.concat(pieces))).toBe(true)
    expect(mount!.stderr()).not.toContain('EIO')
  })
})
