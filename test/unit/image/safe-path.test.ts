import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  ensureNoSymlinkOnPath,
  resolveInside,
  sanitizeEntryPath,
} from '../../../lib/image/unpack/safe-path.js'

describe('sanitizeEntryPath', () => {
  it('cleans ./, repeated and trailing slashes, and strips a leading /', () => {
    expect(sanitizeEntryPath('./usr//bin/./sh')).toEqual({ path: 'usr/bin/sh', strippedRoot: false })
    expect(sanitizeEntryPath('/etc/passwd')).toEqual({ path: 'etc/passwd', strippedRoot: true })
    expect(sanitizeEntryPath('dir/')).toEqual({ path: 'dir', strippedRoot: false })
    expect(sanitizeEntryPath('./')).toEqual({ path: '', strippedRoot: false })
  })

  it("refuses '..' anywhere, NUL bytes and over-long names", () => {
    for (const bad of ['..', '../x', 'a/../b', 'a/..', '/../etc', 'a\0b', 'x'.repeat(5000)]) {
      expect(() => sanitizeEntryPath(bad)).toThrow(expect.objectContaining({ code: 'ERR_IMAGE_UNSAFE_PATH' }))
    }
  })

  it('never yields a path that resolves outside the root (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', '.', '..', '', '/', 'b/', '../', '.wh.x')), (parts) => {
        let p: string
        try {
          p = sanitizeEntryPath(parts.join('/')).path
        } catch {
          return
        }
        expect(resolveInside('/root', p).startsWith('/root')).toBe(true)
        expect(p.split('/')).not.toContain('..')
      }),
    )
  })
})

describe('ensureNoSymlinkOnPath', () => {
  it('counts existing components and refuses a symlink or a file on the way', async () => {
    const root = await mkdtemp(join(tmpdir(), 'coffer-safe-path-'))
    try {
      await mkdir(join(root, 'a/b'), { recursive: true })
      await symlink('/etc', join(root, 'a/link'))
      await writeFile(join(root, 'a/file'), '')
      expect(await ensureNoSymlinkOnPath(root, 'a/b/c/d')).toBe(2)
      expect(await ensureNoSymlinkOnPath(root, 'a/link')).toBe(1) // the last component is not checked
      await expect(ensureNoSymlinkOnPath(root, 'a/link/passwd')).rejects.toMatchObject({
        code: 'ERR_IMAGE_UNSAFE_PATH',
      })
      await expect(ensureNoSymlinkOnPath(root, 'a/file/x')).rejects.toMatchObject({
        code: 'ERR_IMAGE_UNSAFE_PATH',
      })
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })
})
