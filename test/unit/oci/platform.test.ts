import { describe, expect, it } from 'vitest'
import { hostPlatform, parsePlatform, requireManifest, selectManifest } from '../../../lib/oci/platform.js'
import type { Descriptor } from '../../../lib/oci/schemas.js'

const entry = (n: number, platform?: Descriptor['platform']): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${String(n).padStart(64, '0')}`,
  size: 1,
  ...(platform ? { platform } : {}),
})

describe('platforms', () => {
  it('parses and normalizes os/arch/variant', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' })
    expect(parsePlatform('linux/aarch64')).toEqual({ os: 'linux', architecture: 'arm64' })
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64' })
    expect(parsePlatform('Linux/ARM/7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' })
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' })
    for (const bad of ['linux', 'linux/', 'a/b/c/d', 'linux/am d64', '']) {
      expect(() => parsePlatform(bad)).toThrow(expect.objectContaining({ code: 'ERR_OCI_PLATFORM_INVALID' }))
    }
  })

  it('knows the host', () => {
    const h = hostPlatform()
    expect(h.os).toBe('linux')
    expect(['amd64', 'arm64', 'arm', 's390x', 'ppc64le', 'riscv64']).toContain(h.architecture)
  })

  const index = [
    entry(1, { os: 'linux', architecture: 'amd64' }),
    entry(2, { os: 'linux', architecture: 'arm', variant: 'v6' }),
    entry(3, { os: 'linux', architecture: 'arm', variant: 'v7' }),
    entry(4, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    entry(5, { os: 'unknown', architecture: 'unknown' }),
    entry(6, { os: 'windows', architecture: 'amd64' }),
  ]

  it.each([
    ['linux/amd64', 1],
    ['linux/arm/v7', 3],
    ['linux/arm/v8', 3],
    ['linux/arm/v6', 2],
    ['linux/arm64', 4],
    ['linux/arm64/v8', 4],
    ['windows/amd64', 6],
  ])('%s picks entry %i', (want, n) => {
    expect(selectManifest(index, parsePlatform(want))?.digest).toBe(entry(n).digest)
  })

  it('takes the first of equal matches, never unknown/unknown, and a platform-less entry last', () => {
    const dup = [
      entry(7, { os: 'linux', architecture: 'amd64' }),
      entry(8, { os: 'linux', architecture: 'amd64' }),
    ]
    expect(selectManifest(dup, parsePlatform('linux/amd64'))?.digest).toBe(entry(7).digest)
    expect(
      selectManifest(
        [entry(5, { os: 'unknown', architecture: 'unknown' })],
        parsePlatform('unknown/unknown/x'),
      ),
    ).toBeUndefined()
    expect(
      selectManifest(
        [entry(9), entry(1, { os: 'linux', architecture: 'amd64' })],
        parsePlatform('linux/amd64'),
      )?.digest,
    ).toBe(entry(1).digest)
    expect(selectManifest([entry(9)], parsePlatform('linux/s390x'))?.digest).toBe(entry(9).digest)
  })

  it('names what the index offers when nothing matches', () => {
    expect(() => requireManifest(index, parsePlatform('linux/s390x'), 'img')).toThrow(
      /offers linux\/amd64, linux\/arm\/v6/,
    )
    expect(() => requireManifest(index, parsePlatform('linux/s390x'), 'img')).toThrow(
      expect.objectContaining({ code: 'ERR_OCI_PLATFORM_NOT_FOUND' }),
    )
  })
})
