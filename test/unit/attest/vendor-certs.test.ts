import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  cachedVendorCertificates,
  loadVendorCertificates,
  verifyCertificatePath,
} from '../../../lib/attest/vendor-certs.js'
import { makeTestCert } from '../../helpers/test-ca.js'
import { tempDir } from '../../helpers/tee-reports.js'

describe('vendor certificate files', () => {
  const tmp = tempDir('coffer-vendor-')
  afterAll(() => tmp.cleanup())
  const root = makeTestCert({ subject: 'Root', keyType: 'p256', ca: true })
  const mid = makeTestCert({ subject: 'Mid', keyType: 'p256', ca: true, issuer: root })
  const leaf = makeTestCert({ subject: 'Leaf', keyType: 'p256', issuer: mid })
  const file = (name: string, data: string | Buffer) => {
    const p = join(tmp.dir, name)
    writeFileSync(p, data)
    return p
  }

  it('sorts a PEM bundle (any order, text between blocks) and DER files into roots and intermediates', async () => {
    const v = await loadVendorCertificates([
      file('bundle.pem', `# AMD-style bundle\n${mid.pem}comment\n${root.pem}`),
      file('leaf.der', leaf.der),
    ])
    expect(v.roots.map((c) => c.raw.equals(root.der))).toEqual([true])
    expect(v.intermediates.map((c) => c.subject.split('CN=')[1])).toEqual(['Mid', 'Leaf'])
  })

  it.each([
    ['a missing file', () => join(tmp.dir, 'missing.pem')],
    ['a file without a root', () => file('mid.pem', mid.pem)],
    ['garbage', () => file('garbage.der', Buffer.from('not a certificate'))],
    [
      'a broken PEM block',
      () => file('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
    ],
    ['an oversized file', () => file('big.pem', root.pem + ' '.repeat(300 * 1024))],
  ])('refuses %s with ERR_CONFIG_INVALID', async (_n, make) => {
    await expect(loadVendorCertificates([make()])).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID' })
  })

  it('verifies a path that ends below or at a root, and nothing else', () => {
    const now = new Date()
    expect(verifyCertificatePath([leaf.cert, mid.cert], [root.cert], now, 'chain')).toHaveLength(3)
    expect(verifyCertificatePath([leaf.cert, mid.cert, root.cert], [root.cert], now, 'chain')).toHaveLength(3)
    const other = makeTestCert({ subject: 'Root', keyType: 'p256', ca: true })
    const fails = [
      () => verifyCertificatePath([leaf.cert, mid.cert], [other.cert], now, 'chain'),
      () => verifyCertificatePath([leaf.cert], [root.cert], now, 'chain'), // the link through Mid is missing
      () => verifyCertificatePath([mid.cert, leaf.cert], [root.cert], now, 'chain'), // wrong order
      () =>
        verifyCertificatePath(
          [leaf.cert, mid.cert],
          [root.cert],
          new Date(Date.now() + 5 * 365 * 86_400_000),
          'chain',
        ),
      () => verifyCertificatePath([], [root.cert], now, 'chain'),
    ]
    for (const f of fails)
      expect(f).toThrow(expect.objectContaining({ code: 'ERR_ATTEST_VERIFICATION_FAILED' }))
  })

  it('loads once, and tries again after a failed load (a file that appears later)', async () => {
    const path = join(tmp.dir, 'late.pem')
    let loads = 0
    const get = cachedVendorCertificates(() => {
      loads++
      return loadVendorCertificates([path])
    })
    await expect(get()).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID' })
    writeFileSync(path, root.pem)
    const first = await get()
    expect(await get()).toBe(first)
    expect(loads).toBe(2)
  })
})
