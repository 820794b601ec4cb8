import { describe, expect, it } from 'vitest'
import { formatImageName, parseImageName } from '../../../lib/oci/image-name.js'
import { isCofferError } from '../../../lib/util/errors.js'

describe('parseImageName', () => {
  it('parses oci:DIR and oci:DIR:TAG like containers/image (directory ends at the first colon)', () => {
    expect(parseImageName('oci:/tmp/x')).toEqual({ transport: 'oci', dir: '/tmp/x' })
    expect(parseImageName('oci:rel/dir:v1.0')).toEqual({ transport: 'oci', dir: 'rel/dir', tag: 'v1.0' })
    expect(parseImageName('oci:d:org/app:1.0')).toEqual({ transport: 'oci', dir: 'd', tag: 'org/app:1.0' })
  })

  it('parses docker://', () => {
    const n = parseImageName('docker://127.0.0.1:5000/app:1')
    expect(n).toEqual({ transport: 'docker', ref: { host: '127.0.0.1:5000', repository: 'app', tag: '1' } })
    expect(formatImageName(n)).toBe('docker://127.0.0.1:5000/app:1')
  })

  it.each([
    ['alpine', 'ERR_OCI_TRANSPORT_UNKNOWN'],
    ['dir:/tmp/x', 'ERR_OCI_TRANSPORT_UNKNOWN'],
    ['docker:alpine', 'ERR_OCI_REFERENCE_INVALID'],
    ['docker://', 'ERR_OCI_REFERENCE_INVALID'],
    ['oci:', 'ERR_OCI_REFERENCE_INVALID'],
    ['oci:/tmp/x:bad tag', 'ERR_OCI_REFERENCE_INVALID'],
    ['oci:/tmp/x:-x', 'ERR_OCI_REFERENCE_INVALID'],
  ])('rejects %j with %s', (input, code) => {
    expect(() => parseImageName(input)).toThrow(expect.objectContaining({ code }))
    try {
      parseImageName(input)
    } catch (err) {
      expect(isCofferError(err)).toBe(true)
    }
  })
})
