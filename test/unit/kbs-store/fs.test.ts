/**
 * The `fs` KBS store: the conformance suite, then what only a file-backed store can get wrong
 * (file modes, where keys land, foreign and corrupt files, symlinks, stale locks, several processes).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { KbsStore } from '../../../lib/kbs/store.js'
import { ENTRY_HEADER_BYTES } from '../../../plugins/kbs-store/fs/entry-format.js'
import { createFsStore } from '../../../plugins/kbs-store/fs/fs-store.js'
import { expectCode, kbsStoreSuite } from '../../suites/kbs-store.js'

const VITE_NODE = fileURLToPath(new URL('../../../node_modules/.bin/vite-node', import.meta.url))
const CHILD = fileURLToPath(new URL('./fs-child.ts', import.meta.url))

kbsStoreSuite('fs', async () => {
  const root = await mkdtemp(join(tmpdir(), 'coffer-kbs-fs-'))
  const store = await createFsStore({ root })
  return {
    store,
    open: () => createFsStore({ root }),
    cleanup: async () => {
      await store.close()
      await rm(root, { recursive: true, force: true })
    },
  }
})

describe('fs store on disk', () => {
  let root: string
  let store: KbsStore
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'coffer-kbs-fs-'))
    store = await createFsStore({ root })
  })
  afterEach(async () => {
    await store.close()
    await rm(root, { recursive: true, force: true })
  })

  const mode = async (p: string) => (await lstat(p)).mode & 0o777

  it('writes files 0600 and directories 0700, and tightens an open root', async () => {
    await chmod(root, 0o755)
    const s = await createFsStore({ root })
    await s.put('resource', 'default/key/tag', Buffer.from('secret'))
    expect(await mode(root)).toBe(0o700)
    for (const d of ['resource', 'resource/3', 'resource/3/default', 'resource/3/default/key']) {
      expect(await mode(join(root, d))).toBe(0o700)
    }
    expect(await mode(join(root, 'resource/3/default/key/tag'))).toBe(0o600)
    await s.close()
  })

  it('maps a key of n segments to <namespace>/<n>/<segments…>, header first', async () => {
    await store.put('resource', 'default/key/tag', Buffer.from('v3'))
    await store.put('session', 'abc', Buffer.from('v1'), { expiresAt: 4_102_444_800_000 })
    const three = await readFile(join(root, 'resource/3/default/key/tag'))
    expect(three.subarray(0, 4).toString('latin1')).toBe('ckv\x01')
    expect(three.subarray(ENTRY_HEADER_BYTES).toString()).toBe('v3')
    const one = await readFile(join(root, 'session/1/abc'))
    expect(one.readUInt8(4)).toBe(1)
    expect(Number(one.readBigInt64BE(5))).toBe(4_102_444_800_000)
    // Only the store's own names, all starting with '.' when they are not keys: no lock or temp left.
    expect(await readdir(join(root, 'resource/3/default/key'))).toEqual(['tag'])
  })

  it('list skips temp files, lock directories, foreign names and symlinks', async () => {
    await store.put('resource', 'a/b/c', Buffer.from('real'))
    const dir = join(root, 'resource/3/a/b')
    await writeFile(join(dir, '.tmp-0123456789abcdef'), 'half-written')
    await mkdir(join(dir, '.lock-c'), { recursive: true })
    await rm(join(dir, '.lock-c'), { recursive: true })
    await mkdir(join(dir, '.lock-d'))
    await writeFile(join(root, 'resource', 'README'), 'not a depth dir')
    await writeFile(join(root, 'resource/3/a', 'stray-file'), 'a file where a directory belongs')
    await mkdir(join(root, 'resource/1/dir-at-file-level'), { recursive: true })
    await symlink('/etc/passwd', join(root, 'resource/1/passwd'))
    await symlink(dir, join(root, 'resource/3/a/linked'))
    expect(await store.list('resource')).toEqual(['a/b/c'])
  })

  it('never follows a symlink planted at an entry: ERR_KBS_STORE_CORRUPT, the target untouched', async () => {
    const outside = join(root, 'outside')
    await writeFile(outside, 'not yours')
    await mkdir(join(root, 'resource/1'), { recursive: true })
    await symlink(outside, join(root, 'resource/1/evil'))
    await expectCode(store.get('resource', 'evil'), 'ERR_KBS_STORE_CORRUPT')
    // put replaces the link itself (rename over it), never writes through it.
    await store.put('resource', 'evil', Buffer.from('mine'))
    expect(await readFile(outside, 'utf8')).toBe('not yours')
    expect((await lstat(join(root, 'resource/1/evil'))).isFile()).toBe(true)
  })

  it('a foreign, truncated or padded file is ERR_KBS_STORE_CORRUPT; delete still removes it', async () => {
    await store.put('policy', 'good', Buffer.from('0123456789'))
    const good = await readFile(join(root, 'policy/1/good'))
    const cases: Record<string, Buffer> = {
      foreign: Buffer.from('plain text written by hand'),
      short: good.subarray(0, 10),
      truncated: good.subarray(0, good.length - 1),
      padded: Buffer.concat([good, Buffer.from([0])]),
      flags: Buffer.concat([good.subarray(0, 4), Buffer.from([0x80]), good.subarray(5)]),
      directory: Buffer.alloc(0),
    }
    for (const [name, content] of Object.entries(cases)) {
      if (name === 'directory') await mkdir(join(root, 'policy/1', name))
      else await writeFile(join(root, 'policy/1', name), content)
      await expectCode(store.get('policy', name), 'ERR_KBS_STORE_CORRUPT')
      expect(await store.putIfAbsent('policy', name, Buffer.from('x'))).toBe(false)
    }
    await expectCode(store.list('policy'), 'ERR_KBS_STORE_CORRUPT')
    for (const name of Object.keys(cases)) {
      if (name === 'directory') continue
      expect(await store.delete('policy', name)).toBe(true)
    }
    await rm(join(root, 'policy/1/directory'), { recursive: true })
    expect(await store.list('policy')).toEqual(['good'])
  })

  it('takes over the lock of a writer that died (stale mkdir lock)', async () => {
    const dir = join(root, 'session/1')
    await mkdir(join(dir, '.lock-orphan'), { recursive: true })
    const old = new Date(Date.now() - 60_000)
    await utimes(join(dir, '.lock-orphan'), old, old)
    const started = Date.now()
    expect(await store.putIfAbsent('session', 'orphan', Buffer.from('x'))).toBe(true)
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('sweeps an expired entry from disk when get or list finds it', async () => {
    await store.put('session', 'old1', Buffer.from('x'), { expiresAt: Date.now() - 1 })
    await store.put('session', 'old2', Buffer.from('x'), { expiresAt: Date.now() - 1 })
    expect(await store.get('session', 'old1')).toBeUndefined()
    expect(await store.list('session')).toEqual([])
    expect(await readdir(join(root, 'session/1'))).toEqual([])
  })

  it('an unusable root is ERR_KBS_STORE_UNAVAILABLE', async () => {
    await writeFile(join(root, 'file'), 'x')
    await expectCode(createFsStore({ root: join(root, 'file') }), 'ERR_KBS_STORE_UNAVAILABLE')
    await expectCode(createFsStore({ root: join(root, 'file', 'below') }), 'ERR_KBS_STORE_UNAVAILABLE')
  })
})

describe('fs store across processes', () => {
  let root: string
  const children: ChildProcess[] = []
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'coffer-kbs-fs-mp-'))
  })
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL')
    await rm(root, { recursive: true, force: true })
  })

  /** Starts a child and resolves once it printed `ready`; `result` resolves with its JSON line. */
  async function child(args: string[]): Promise<{ result: Promise<Record<string, unknown>> }> {
    const c = spawn(VITE_NODE, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(c)
    let out = ''
    let err = ''
    c.stderr!.on('data', (d: Buffer) => (err += d.toString()))
    const ready = new Promise<void>((resolve, reject) => {
      c.stdout!.on('data', (d: Buffer) => {
        out += d.toString()
        if (out.startsWith('ready\n')) resolve()
      })
      c.once('exit', (code) => reject(new Error(`child exited ${code} before ready: ${err}`)))
    })
    const result = new Promise<Record<string, unknown>>((resolve, reject) => {
      c.once('exit', (code) => {
        const line = out.split('\n').find((l) => l.startsWith('{'))
        if (code === 0 && line) resolve(JSON.parse(line) as Record<string, unknown>)
        else reject(new Error(`child exited ${code}: ${err}`))
      })
    })
    await ready
    return { result }
  }

  it('putIfAbsent across processes: every key has exactly one winner', async () => {
    const KEYS = 40
    const racers = await Promise.all(['p0', 'p1', 'p2'].map((id) => child(['race', root, id, String(KEYS)])))
    await writeFile(join(root, 'go'), '')
    const won = (await Promise.all(racers.map((r) => r.result))).map((r) => r.won as number[])
    const store = await createFsStore({ root })
    for (let i = 0; i < KEYS; i++) {
      const winners = won.map((w, p) => (w.includes(i) ? p : -1)).filter((p) => p >= 0)
      expect(winners, `key ${i}`).toHaveLength(1)
      expect(Buffer.from((await store.get('session', `race/k${i}`))!).toString()).toBe(`p${winners[0]}`)
    }
    await store.close()
  }, 60_000)

  it('a reader in one process never sees a torn value written by another', async () => {
    const store = await createFsStore({ root })
    const a = Buffer.alloc(200 * 1024, 0xaa)
    const b = Buffer.alloc(333 * 1024, 0xbb)
    await store.put('resource', 'torn/x/v', a)
    const writer = await child(['write', root, '60'])
    await writeFile(join(root, 'go'), '')
    let done = false
    void writer.result.finally(() => (done = true)).catch(() => {})
    let reads = 0
    while (!done) {
      const got = Buffer.from((await store.get('resource', 'torn/x/v'))!)
      expect(got.equals(a) || got.equals(b)).toBe(true)
      reads++
    }
    expect(await writer.result).toEqual({ wrote: 60 })
    expect(reads).toBeGreaterThan(10)
    await store.close()
  }, 60_000)
})

describe('fs store housekeeping never blocks a read', () => {
  it('get and list of an expired entry whose lock is held return at once, without the entry', async () => {
    const root = await mkdtemp(join(tmpdir(), 'coffer-kbs-fs-'))
    const store = await createFsStore({ root })
    await store.put('session', 'busy', Buffer.from('x'), { expiresAt: Date.now() - 1 })
    await mkdir(join(root, 'session/1/.lock-busy'))
    const started = Date.now()
    expect(await store.get('session', 'busy')).toBeUndefined()
    expect(await store.list('session')).toEqual([])
    expect(Date.now() - started).toBeLessThan(2_000)
    await rm(join(root, 'session/1/.lock-busy'), { recursive: true })
    expect(await store.list('session')).toEqual([])
    expect(await readdir(join(root, 'session/1'))).toEqual([])
    await store.close()
    await rm(root, { recursive: true, force: true })
  })
})
