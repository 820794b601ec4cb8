/**
 * Adversarial corpus: crafted layers that try to write, link or delete outside the root. Each case
 * checks the coded error (or safe handling) and that the canary directory beside the root, and
 * everything else beside it, is byte-for-byte unchanged.
 */
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { unpackLayer, type WhiteoutMode } from '../../../lib/image/unpack/index.js'
import { isCofferError } from '../../../lib/util/errors.js'
import { tarBuffer, tarStream, type TarEntry } from '../../helpers/tar-builder.js'

let base: string
let root: string
let canary: string
const CANARY_TIME = new Date(Date.UTC(2001, 0, 1))

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'coffer-escape-'))
  root = join(base, 'root')
  canary = join(base, 'canary')
  await mkdir(root)
  await mkdir(canary)
  await writeFile(join(canary, 'secret'), 'canary')
  await writeFile(join(canary, 'passwd'), 'canary')
  // An old mtime: an unpacker that set times through a symlink would change it.
  await utimes(canary, CANARY_TIME, CANARY_TIME)
})

afterEach(async () => {
  try {
    await expectCanaryIntact()
  } finally {
    await rm(base, { recursive: true, force: true })
  }
})

async function expectCanaryIntact(): Promise<void> {
  expect((await readdir(base)).sort()).toEqual(['canary', 'root'])
  expect((await readdir(canary)).sort()).toEqual(['passwd', 'secret'])
  expect(await readFile(join(canary, 'secret'), 'utf8')).toBe('canary')
  expect(await readFile(join(canary, 'passwd'), 'utf8')).toBe('canary')
  expect((await lstat(canary)).mtime.getTime()).toBe(CANARY_TIME.getTime())
}

async function expectCode(
  entries: TarEntry[],
  code: string,
  whiteouts: WhiteoutMode = 'apply',
): Promise<void> {
  const err = await unpackLayer(tarStream(entries), root, { whiteouts }).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(isCofferError(err), String(err)).toBe(true)
  expect((err as { code: string }).code).toBe(code)
}

const modes: WhiteoutMode[] = ['apply', 'overlay', 'record']

describe.each(modes)('unpack escapes (%s mode)', (mode) => {
  it("refuses '..' in entry names", async () => {
    await expectCode([{ name: '../canary/secret', content: 'pwned' }], 'ERR_IMAGE_UNSAFE_PATH', mode)
    await expectCode([{ name: 'a/../../canary/x', content: 'pwned' }], 'ERR_IMAGE_UNSAFE_PATH', mode)
  })

  it('strips a leading / and writes inside the root', async () => {
    const r = await unpackLayer(tarStream([{ name: `${canary}/secret`, content: 'inside' }]), root, {
      whiteouts: mode,
    })
    expect(r.warnings[0]?.code).toBe('ABSOLUTE_NAME_STRIPPED')
    expect(await readFile(join(root, canary, 'secret'), 'utf8')).toBe('inside')
  })

  it('never writes through a symlink (a -> /etc, then a/passwd; a -> canary, then a/secret)', async () => {
    await expectCode(
      [
        { name: 'a', type: 'symlink', target: canary },
        { name: 'a/passwd', content: 'pwned' },
      ],
      'ERR_IMAGE_UNSAFE_PATH',
      mode,
    )
    await rm(join(root, 'a'))
    await expectCode(
      [
        { name: 'b', type: 'symlink', target: '../canary' },
        { name: 'b/secret', content: 'pwned' },
      ],
      'ERR_IMAGE_UNSAFE_PATH',
      mode,
    )
  })

  it('never hardlinks through a symlink to a dir outside', async () => {
    await expectCode(
      [
        { name: 'd', type: 'symlink', target: canary },
        { name: 'h', type: 'link', target: 'd/secret' },
      ],
      'ERR_IMAGE_UNSAFE_PATH',
      mode,
    )
    await expect(lstat(join(root, 'h'))).rejects.toThrow(/ENOENT/)
  })

  it('refuses hardlinks to paths outside the root', async () => {
    await expectCode([{ name: 'h', type: 'link', target: '../canary/secret' }], 'ERR_IMAGE_UNSAFE_PATH', mode)
    // An absolute target is rooted at the image root: it names root/<canary>/secret, which is missing.
    const r = await unpackLayer(tarStream([{ name: 'h', type: 'link', target: `${canary}/secret` }]), root, {
      whiteouts: 'record',
    })
    expect(r.externalLinks).toHaveLength(1)
    await expect(lstat(join(root, 'h'))).rejects.toThrow(/ENOENT/)
  })

  it('does not loop on a symlink chain', async () => {
    await expectCode(
      [
        { name: 'a', type: 'symlink', target: 'b' },
        { name: 'b', type: 'symlink', target: 'a' },
        { name: 'a/x', content: 'x' },
      ],
      'ERR_IMAGE_UNSAFE_PATH',
      mode,
    )
  })

  it("refuses a whiteout outside ('../.wh.x') and does not delete through a symlink", async () => {
    await expectCode([{ name: '../.wh.canary', content: '' }], 'ERR_IMAGE_UNSAFE_PATH', mode)
    const r = unpackLayer(
      tarStream([
        { name: 's', type: 'symlink', target: canary },
        { name: 's/.wh.secret', content: '' },
      ]),
      root,
      { whiteouts: mode },
    )
    if (mode === 'overlay' && process.getuid?.() === 0) await expect(r).rejects.toThrow(/symlink/)
    else await r
  })

  it('an opaque marker under a symlink deletes nothing outside', async () => {
    await unpackLayer(
      tarStream([
        { name: 's', type: 'symlink', target: canary },
        { name: 's/.wh..wh..opq', content: '' },
      ]),
      root,
      { whiteouts: mode },
    ).catch((e: unknown) => expect(isCofferError(e, 'ERR_IMAGE_UNSAFE_PATH')).toBe(true))
  })

  it('a file replacing a symlink replaces the link, not its target', async () => {
    await unpackLayer(
      tarStream([
        { name: 's', type: 'symlink', target: `${canary}/secret` },
        { name: 's', content: 'replaced' },
        { name: 'd/', type: 'dir' },
        { name: 'd/child', content: 'c' },
        { name: 'd', type: 'symlink', target: canary },
      ]),
      root,
      { whiteouts: mode },
    )
    expect(await readFile(join(root, 's'), 'utf8')).toBe('replaced')
    expect((await lstat(join(root, 'd'))).isSymbolicLink()).toBe(true)
  })

  it('a directory replacing a symlink to outside is a fresh directory', async () => {
    await unpackLayer(
      tarStream([
        { name: 'd', type: 'symlink', target: canary },
        { name: 'd/', type: 'dir', mode: 0o700 },
        { name: 'd/secret', content: 'inside' },
      ]),
      root,
      { whiteouts: mode },
    )
    expect((await lstat(join(root, 'd'))).isDirectory()).toBe(true)
  })
})

describe('unpack limits and malformed input', () => {
  it('bounds entry size, total size and entry count', async () => {
    const big: TarEntry[] = [{ name: 'big', type: 'big', size: 2 << 20 }]
    await expect(
      unpackLayer(tarStream(big), root, { whiteouts: 'apply', maxEntrySize: 1 << 20 }),
    ).rejects.toMatchObject({
      code: 'ERR_IMAGE_LAYER_TOO_LARGE',
    })
    const two: TarEntry[] = [
      { name: 'a', type: 'big', size: 600 << 10 },
      { name: 'b', type: 'big', size: 600 << 10 },
    ]
    await expect(
      unpackLayer(tarStream(two), root, { whiteouts: 'apply', maxTotalSize: 1 << 20 }),
    ).rejects.toMatchObject({
      code: 'ERR_IMAGE_LAYER_TOO_LARGE',
    })
    const many: TarEntry[] = Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, content: '' }))
    await expect(
      unpackLayer(tarStream(many), root, { whiteouts: 'apply', maxEntries: 10 }),
    ).rejects.toMatchObject({
      code: 'ERR_IMAGE_LAYER_TOO_LARGE',
    })
  })

  it('refuses an oversized PAX header and a PAX path longer than PATH_MAX', async () => {
    const huge = [{ name: 'f', content: 'x', pax: { comment: 'c'.repeat(5 << 20) } }]
    await expect(unpackLayer(tarStream(huge), root, { whiteouts: 'apply' })).rejects.toMatchObject({
      code: 'ERR_IMAGE_TAR_INVALID',
    })
    await expectCode([{ name: `${'d/'.repeat(2100)}f`, content: 'x' }], 'ERR_IMAGE_UNSAFE_PATH')
  })

  it('stops on abort with ERR_CANCELED', async () => {
    const ac = new AbortController()
    ac.abort()
    await expect(
      // A plain Node stream: tar-builder's streamx pack, destroyed before it is read, throws an
      // AbortError of its own from Readable.from (a test-helper artefact, not the unpacker's).
      unpackLayer(Readable.from([await tarBuffer([{ name: 'f', content: 'x' }])]), root, {
        whiteouts: 'apply',
        signal: ac.signal,
      }),
    ).rejects.toMatchObject({ code: 'ERR_CANCELED' })
  })

  it('rejects (never hangs) when the source fails mid-layer', async () => {
    const tar = await tarBuffer([{ name: 'f', content: 'x'.repeat(100_000) }])
    const source = new Readable({ read() {} })
    source.push(tar.subarray(0, 4096))
    setTimeout(() => source.destroy(new Error('connection reset')), 20)
    const err = await unpackLayer(source, root, { whiteouts: 'apply' }).catch((e: unknown) => e)
    expect((err as Error).message).toBe('connection reset') // the caller's error, not relabelled
  })

  it('refuses a bare .wh. whiteout', async () => {
    await expectCode([{ name: 'x/.wh.', content: '' }], 'ERR_IMAGE_TAR_INVALID')
  })

  it('refuses garbage, a truncated tar and an unknown typeflag with ERR_IMAGE_TAR_INVALID', async () => {
    const garbage = Buffer.alloc(2048, 0x41)
    await expect(unpackLayer(Readable.from([garbage]), root, { whiteouts: 'apply' })).rejects.toMatchObject({
      code: 'ERR_IMAGE_TAR_INVALID',
    })
    const good = await tarBuffer([{ name: 'f', content: 'x'.repeat(5000) }])
    await expect(
      unpackLayer(Readable.from([good.subarray(0, 1500)]), root, { whiteouts: 'apply' }),
    ).rejects.toMatchObject({ code: 'ERR_IMAGE_TAR_INVALID' })
    const odd = Buffer.from(good)
    odd[156] = 'X'.charCodeAt(0)
    odd.fill(0x20, 148, 156)
    let sum = 0
    for (let i = 0; i < 512; i++) sum += odd[i] as number
    odd.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1')
    await expect(unpackLayer(Readable.from([odd]), root, { whiteouts: 'apply' })).rejects.toMatchObject({
      code: 'ERR_IMAGE_TAR_INVALID',
    })
  })

  it('refuses a hardlink to a directory or to a missing file when materializing', async () => {
    await expectCode(
      [
        { name: 'd/', type: 'dir' },
        { name: 'h', type: 'link', target: 'd' },
      ],
      'ERR_IMAGE_HARDLINK_INVALID',
    )
    await expectCode([{ name: 'h2', type: 'link', target: 'nope' }], 'ERR_IMAGE_HARDLINK_INVALID')
  })
})
