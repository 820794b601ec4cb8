/**
 * The guest's registry files from its config through the one location reader: local files and
 * kbs:/// resources (a fake KBS client here), size limits, and content kept in memory.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { loadGuestRegistriesD, withRegistryFiles } from '../../../lib/image/registry-files.js'
import { locationReader } from '../../../lib/image/trust-material.js'
import type { KbsClient } from '../../../lib/kbs/client.js'
import { pullSources } from '../../../lib/oci/registry/registries-conf.js'
import { parseDockerReference } from '../../../lib/oci/reference.js'
import { usesSigstoreAttachments } from '../../../lib/sign/registries-d.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coffer-regfiles-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** A KBS client that serves `resources` by path and records what was asked. */
function fakeKbs(resources: Record<string, string | Buffer>): KbsClient & { asked: string[] } {
  const asked: string[] = []
  return {
    asked,
    getResource: async (uri: { repository: string; type: string; tag: string }) => {
      const path = `${uri.repository}/${uri.type}/${uri.tag}`
      asked.push(path)
      const r = resources[path]
      if (r === undefined) throw new Error(`no ${path}`)
      return Buffer.from(r)
    },
  } as unknown as KbsClient & { asked: string[] }
}

const AUTH = JSON.stringify({ auths: { 'r.io': { auth: Buffer.from('u:p').toString('base64') } } })
const CONF = '[[registry]]\nprefix = "alias.io/app"\nlocation = "r.io/real/app"\n'

describe('guest registry files', () => {
  it('auth.json and registries.conf from the KBS stay in memory and replace the defaults', async () => {
    const kbs = fakeKbs({ 'apps/auth/g': AUTH, 'apps/regconf/g': CONF })
    const access = await withRegistryFiles(
      { authfile: '/nonexistent/auth.json' },
      { auth: 'kbs:///apps/auth/g', registriesConf: 'kbs:///apps/regconf/g' },
      locationReader(kbs),
    )
    expect(access.authfile).toBeUndefined()
    expect(access.authFileContent?.source).toBe('kbs:///apps/auth/g')
    expect(Buffer.from(access.authFileContent!.bytes).toString()).toBe(AUTH)
    expect(pullSources(access.registriesConf!, 'alias.io/app/x', false).at(-1)?.repository).toBe(
      'r.io/real/app/x',
    )
    expect(kbs.asked).toEqual(['apps/auth/g', 'apps/regconf/g'])
    expect(await readdir(dir)).toEqual([])
  })

  it('local files are read the same way; a missing one is an error, not anonymous access', async () => {
    await writeFile(join(dir, 'auth.json'), AUTH)
    await writeFile(join(dir, 'registries.conf'), CONF)
    const read = locationReader(undefined)
    const access = await withRegistryFiles(
      {},
      { auth: join(dir, 'auth.json'), registriesConf: join(dir, 'registries.conf') },
      read,
    )
    expect(access.authFileContent?.source).toBe(join(dir, 'auth.json'))
    expect(access.registriesConf?.sources).toEqual([join(dir, 'registries.conf')])
    await expect(withRegistryFiles({}, { auth: join(dir, 'missing.json') }, read)).rejects.toMatchObject({
      code: 'ERR_AUTH_FILE_INVALID',
    })
    await expect(withRegistryFiles({}, { auth: 'kbs:///a/b/c' }, read)).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
    })
    await writeFile(join(dir, 'bad.conf'), '[registries.search]\nregistries = []\n')
    await expect(
      withRegistryFiles({}, { registriesConf: join(dir, 'bad.conf') }, read),
    ).rejects.toMatchObject({
      code: 'ERR_REGISTRIES_CONF_INVALID',
    })
  })

  it('refuses a KBS resource over the size limit of its kind', async () => {
    const kbs = fakeKbs({ 'apps/auth/big': Buffer.alloc(2 * 1024 * 1024, 0x20) })
    await expect(
      withRegistryFiles({}, { auth: 'kbs:///apps/auth/big' }, locationReader(kbs)),
    ).rejects.toMatchObject({ code: 'ERR_AUTH_FILE_INVALID', message: expect.stringContaining('limit') })
  })

  it('registries.d: a kbs:/// resource or a local file is one document; a directory is merged', async () => {
    const doc = 'default-docker:\n  use-sigstore-attachments: true\n'
    const ref = parseDockerReference('q.io/x:1')
    const kbs = fakeKbs({ 'apps/registries-d/g': doc })
    expect(
      usesSigstoreAttachments(
        await loadGuestRegistriesD('kbs:///apps/registries-d/g', locationReader(kbs)),
        ref,
      ),
    ).toBe(true)
    await writeFile(join(dir, 'one.yaml'), doc)
    const read = locationReader(undefined)
    expect(usesSigstoreAttachments(await loadGuestRegistriesD(join(dir, 'one.yaml'), read), ref)).toBe(true)
    await mkdir(join(dir, 'd'))
    await writeFile(join(dir, 'd', 'a.yaml'), doc)
    expect(usesSigstoreAttachments(await loadGuestRegistriesD(join(dir, 'd'), read), ref)).toBe(true)
    await expect(
      loadGuestRegistriesD(
        'kbs:///apps/registries-d/bad',
        locationReader(fakeKbs({ 'apps/registries-d/bad': 'docker: [' })),
      ),
    ).rejects.toMatchObject({ code: 'ERR_SIGN_REGISTRIES_D_INVALID' })
  })
})
