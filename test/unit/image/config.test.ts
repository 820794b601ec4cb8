import { describe, expect, it } from 'vitest'
import { parseImageServiceConfig } from '../../../lib/image/config.js'

describe('image service config', () => {
  it('resolves relative paths, keeps kbs:/// locations, and fills defaults', () => {
    const c = parseImageServiceConfig(
      {
        work_dir: 'work',
        kbs: { url: 'http://127.0.0.1:8080' },
        image: {
          policy: 'kbs:///default/security-policy/test',
          auth: 'auth.json',
          registries_conf: 'file://regs.conf',
        },
      },
      '/etc/coffer',
    )
    expect(c.work_dir).toBe('/etc/coffer/work')
    expect(c.image.policy).toBe('kbs:///default/security-policy/test')
    expect(c.image.auth).toBe('/etc/coffer/auth.json')
    expect(c.image.registries_conf).toBe('/etc/coffer/regs.conf')
    expect(c.image.max_concurrent_layers).toBe(3)
    expect(c.kbs?.tls_verify).toBe(true)
  })

  it.each([
    ['no policy and no explicit insecure mode', {}],
    ['kbs:/// without a KBS', { image: { policy: 'kbs:///default/security-policy/test' } }],
    ['unknown field', { image: { policy: '/p.json', polcy: 'x' } }],
    ['bad KBS URL', { kbs: { url: 'not a url' }, image: { policy: '/p.json' } }],
    ['absurd concurrency', { image: { policy: '/p.json', max_concurrent_layers: 1000 } }],
  ])('%s → ERR_CONFIG_INVALID', (_name, doc) => {
    expect(() => parseImageServiceConfig(doc, '/')).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
    )
  })

  it('accepting unsigned images must be asked for by name', () => {
    expect(
      parseImageServiceConfig({ image: { insecure_accept_anything: true } }, '/').image.policy,
    ).toBeUndefined()
  })
})
