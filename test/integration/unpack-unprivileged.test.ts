/**
 * The unpacker without privilege (as uid 65534 when the tests run as root): device nodes are
 * skipped with a warning, FIFOs are made when allowed, ownership is not applied but modes
 * (setuid included) are, and overlay-style whiteouts fall back to the recorded list.
 */
import { spawn } from 'node:child_process'
import { chown, lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { UnpackResult } from '../../lib/image/unpack/index.js'
import { tarBuffer } from '../helpers/tar-builder.js'

const VITE_NODE = fileURLToPath(new URL('../../node_modules/.bin/vite-node', import.meta.url))
const CHILD = fileURLToPath(new URL('./fixtures/unpack-child.ts', import.meta.url))
const NOBODY = 65534
const asRoot = process.getuid?.() === 0

let work: string
let tarFile: string

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-unpriv-'))
  tarFile = join(work, 'layer.tar')
  await writeFile(
    tarFile,
    await tarBuffer([
      { name: 'dev/null', type: 'char', major: 1, minor: 3 },
      { name: 'dev/sda', type: 'block', major: 8, minor: 0 },
      { name: 'run/fifo', type: 'fifo' },
      { name: 'usr/bin/su', content: 'su', mode: 0o4755, uid: 0, gid: 0 },
      { name: 'home/u/f', content: 'f', uid: 1000, gid: 1000 },
      { name: 'etc/.wh.gone', content: '' },
      { name: 'opq/.wh..wh..opq', content: '' },
    ]),
  )
  if (asRoot) await chown(work, NOBODY, NOBODY)
})

afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

async function unpackAsNobody(dest: string, mode: string): Promise<UnpackResult> {
  await mkdir(dest)
  if (asRoot) await chown(dest, NOBODY, NOBODY)
  const child = spawn(VITE_NODE, [CHILD, tarFile, dest, mode, 'allowDevices'], {
    cwd: tmpdir(),
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const code = await new Promise<number | null>((r) => child.on('close', r))
  expect(code, err).toBe(0)
  return JSON.parse(out) as UnpackResult
}

describe('unpacking without privilege', () => {
  it('skips device nodes, makes FIFOs, keeps setuid, does not chown', async () => {
    const dest = join(work, 'apply')
    const r = await unpackAsNobody(dest, 'apply')
    const skipped = r.warnings.filter((w) => w.code === 'DEVICE_SKIPPED').map((w) => w.path)
    expect(skipped.sort()).toEqual(['dev/null', 'dev/sda'])
    expect(await readdir(join(dest, 'dev'))).toEqual([])
    expect((await lstat(join(dest, 'run/fifo'))).isFIFO()).toBe(true)
    const su = await lstat(join(dest, 'usr/bin/su'))
    expect(su.mode & 0o7777).toBe(0o4755)
    const me = asRoot ? NOBODY : process.getuid?.()
    expect(su.uid).toBe(me)
    expect((await lstat(join(dest, 'home/u/f'))).uid).toBe(me)
  })

  it('overlay mode records whiteouts and opaque dirs it cannot materialize', async () => {
    const dest = join(work, 'overlay')
    const r = await unpackAsNobody(dest, 'overlay')
    expect(r.whiteouts).toEqual(['etc/gone'])
    expect(r.opaqueDirs).toEqual(['opq'])
    const codes = r.warnings.filter((w) => w.code === 'WHITEOUT_NOT_MATERIALIZED').map((w) => w.path)
    expect(codes.sort()).toEqual(['etc/gone', 'opq'])
    await expect(lstat(join(dest, 'etc/gone'))).rejects.toThrow(/ENOENT/)
  })
})
