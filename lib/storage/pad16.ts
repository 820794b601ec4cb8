import { CofferError } from '../util/errors.js'

/**
 * PKCS#7 padding to a multiple of 16 bytes, as gocryptfs pads names before EME
 * (internal/nametransform/pad16.go): always 1..16 pad bytes, so a 16-byte name grows to 32.
 */
export function pad16(data: Uint8Array): Buffer {
  const pad = 16 - (data.length % 16)
  const out = Buffer.alloc(data.length + pad, pad)
  out.set(data, 0)
  return out
}

/** Removes PKCS#7 padding; malformed padding is ERR_STORAGE_NAME_INVALID (a corrupt or forged name). */
export function unpad16(data: Uint8Array): Buffer {
  const fail = (): never => {
    throw new CofferError('ERR_STORAGE_NAME_INVALID', 'bad name padding')
  }
  if (data.length === 0 || data.length % 16 !== 0) fail()
  const pad = data[data.length - 1]!
  if (pad < 1 || pad > 16 || pad >= data.length) fail()
  for (let i = data.length - pad; i < data.length; i++) if (data[i] !== pad) fail()
  return Buffer.from(data.subarray(0, data.length - pad))
}
