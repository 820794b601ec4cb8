/** The CSI driver's small parts: mountinfo, endpoints, StorageClass parameters, state files, locks. */
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { keyOf } from '../../../lib/csi/controller.js'
import { KeyedLock } from '../../../lib/csi/keyed-lock.js'
import { parseMountPoints } from '../../../lib/csi/mountinfo.js'
import { NodeState } from '../../../lib/csi/node-state.js'
import { socketPathOf } from '../../../lib/csi/server.js'
import { VolumeStore } from '../../../lib/csi/volume-store.js'
import { isCofferError } from '../../../lib/util/errors.js'

let work: string
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'coffer-csiparts-'))
})
afterAll(async () => {
  await rm(work, { recursive: true, force: true })
})

const thrown = (fn: () => unknown): unknown => {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

describe('parseMountPoints', () => {
  it('reads field 5 and decodes octal escapes (space, tab, newline, backslash)', () => {
    const text = [
      '36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw',
      '37 35 0:40 / /var/lib/kubelet/pods/x/vol rw shared:2 - fuse.coffer coffer rw',
      '38 35 0:41 / /a\\011b\\012c\\134d rw - tmpfs tmpfs rw',
      '',
    ].join('\n')
    expect([...parseMountPoints(text)]).toEqual([
      '/mnt/with space',
      '/var/lib/kubelet/pods/x/vol',
      '/a\tb\nc\\d',
    ])
  })
})

describe('socketPathOf', () => {
  it('accepts unix:///abs and unix:/abs; refuses tcp, relative and empty', () => {
    expect(socketPathOf('unix:///csi/csi.sock')).toBe('/csi/csi.sock')
    expect(socketPathOf('unix:/csi/csi.sock')).toBe('/csi/csi.sock')
    for (const bad of ['tcp://127.0.0.1:10000', 'unix://relative.sock', '/csi/csi.sock', 'unix://', ''])
      expect(
        isCofferError(
          thrown(() => socketPathOf(bad)),
          'ERR_CSI_ENDPOINT_INVALID',
        ),
        bad,
      ).toBe(true)
  })
})

describe('keyOf (StorageClass parameters)', () => {
  const node = { kind: 'passphrase-file' as const, path: '/etc/coffer/csi/passphrase' }
  it('keyUri with kbsUrl and attester; provisioner parameters are ignored; no keyUri → the node passphrase', () => {
    expect(
      keyOf(
        {
          keyUri: 'kbs:///default/volume/a',
          kbsUrl: 'https://kbs:8080',
          attester: 'snp',
          'csi.storage.k8s.io/pv/name': 'x',
        },
        node,
      ),
    ).toEqual({ kind: 'kbs', uri: 'kbs:///default/volume/a', kbsUrl: 'https://kbs:8080', attester: 'snp' })
    expect(keyOf({}, node)).toBe(node)
  })
  it('refuses typos, malformed URIs and URLs, stray kbsUrl, and no key at all', () => {
    const cases: [Record<string, string>, string][] = [
      [{ keyuri: 'kbs:///a/b/c' }, 'ERR_CSI_ARGUMENT_INVALID'],
      [{ keyUri: 'kbs:///a/b' }, 'ERR_CSI_ARGUMENT_INVALID'],
      [{ keyUri: 'kbs:///a/b/c/../d' }, 'ERR_CSI_ARGUMENT_INVALID'],
      [{ keyUri: 'https://x/a/b/c' }, 'ERR_CSI_ARGUMENT_INVALID'],
      [{ keyUri: 'kbs:///a/b/c', kbsUrl: 'file:///etc/passwd' }, 'ERR_CSI_ARGUMENT_INVALID'],
      [{ keyUri: 'kbs:///a/b/c', attester: '--evil' }, 'ERR_CSI_ARGUMENT_INVALID'],
      [{ kbsUrl: 'https://kbs' }, 'ERR_CSI_ARGUMENT_INVALID'],
    ]
    for (const [params, code] of cases)
      expect(
        isCofferError(
          thrown(() => keyOf(params, node)),
          code as 'ERR_CSI_ARGUMENT_INVALID',
        ),
        JSON.stringify(params),
      ).toBe(true)
    expect(
      isCofferError(
        thrown(() => keyOf({}, undefined)),
        'ERR_CSI_ARGUMENT_MISSING',
      ),
    ).toBe(true)
  })
})

describe('VolumeStore', () => {
  it('a tampered volume.json is ERR_CSI_STATE_CORRUPT, not a crash or a silent accept', async () => {
    const store = await new VolumeStore(join(work, 'vs'), { format: async () => {} }).open()
    const { record } = await store.create('pvc', 0, { kind: 'passphrase-file', path: '/p' })
    await writeFile(join(work, 'vs', record.volumeId, 'volume.json'), '{"volumeId": 1')
    await expect(store.get(record.volumeId)).rejects.toMatchObject({ code: 'ERR_CSI_STATE_CORRUPT' })
    await writeFile(join(work, 'vs', record.volumeId, 'volume.json'), 'x'.repeat(100_000))
    await expect(store.get(record.volumeId)).rejects.toMatchObject({ code: 'ERR_CSI_STATE_CORRUPT' })
  })

  it('a failed format leaves nothing; leftovers of an interrupted create are removed on open', async () => {
    const store = await new VolumeStore(join(work, 'vs2'), {
      format: async () => {
        throw new Error('disk full')
      },
    }).open()
    await expect(store.create('pvc', 0, { kind: 'passphrase-file', path: '/p' })).rejects.toThrow('disk full')
    expect(await readdir(join(work, 'vs2'))).toEqual([])
    await mkdir(join(work, 'vs2', '.tmp-0123'))
    await mkdir(join(work, 'vs2', '.deleting-4567'))
    await new VolumeStore(join(work, 'vs2'), { format: async () => {} }).open()
    expect(await readdir(join(work, 'vs2'))).toEqual([])
  })
})

describe('NodeState', () => {
  it('keeps records across instances and drops unreadable ones', async () => {
    const dir = join(work, 'ns')
    const a = await new NodeState(dir).open()
    await a.put({ path: '/t/1', volumeId: 'v', kind: 'bound', readonly: false, fingerprint: 'f' })
    await writeFile(join(dir, 'garbage.json'), '{"path": "relative"}')
    const b = await new NodeState(dir).open()
    expect(b.get('/t/1')).toMatchObject({ volumeId: 'v', kind: 'bound' })
    expect(b.ofVolume('v')).toHaveLength(1)
    expect(await readdir(dir)).toHaveLength(1)
  })
})

describe('KeyedLock', () => {
  it('runs calls with one key one after another, other keys at once, and survives a failure', async () => {
    const lock = new KeyedLock()
    const log: string[] = []
    const step =
      (name: string, ms: number, fail = false) =>
      async () => {
        log.push(`${name}+`)
        await new Promise((r) => setTimeout(r, ms))
        log.push(`${name}-`)
        if (fail) throw new Error(name)
      }
    await Promise.allSettled([
      lock.run('a', step('a1', 30, true)),
      lock.run('a', step('a2', 1)),
      lock.run('b', step('b1', 1)),
    ])
    expect(log.indexOf('a2+')).toBeGreaterThan(log.indexOf('a1-'))
    expect(log.indexOf('b1+')).toBeLessThan(log.indexOf('a1-'))
  })
})
