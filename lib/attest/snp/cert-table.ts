import { CofferError } from '../../util/errors.js'
import type { SnpCertEntry, SnpCertType } from './evidence.js'

/**
 * The GHCB certificate table an SNP guest gets beside its report (configfs-tsm `auxblob`, GHCB
 * spec "SNP Extended Guest Request"): entries of GUID(16) ‖ offset u32 ‖ length u32, ended by an
 * all-zero entry; offsets count from the table start. GUIDs are in string byte order, as virtee
 * reads them (`Uuid::from_bytes`).
 */

const GUIDS: Record<string, SnpCertType> = {
  c0b406a4a803495297433fb6014cd0ae: 'ARK',
  '4ab7b379bbac4fe4a02f05aef327c782': 'ASK',
  '63da758de6644564adc5f4b93be8accd': 'VCEK',
  a8074bc2a25a483eaae639c045a0b8a1: 'VLEK',
  '92f81bc358114d3d97ffd19f88dc67ea': 'CRL',
}
const TYPES = new Map(Object.entries(GUIDS))

const ENTRY_SIZE = 24
const MAX_ENTRIES = 16

/** Parses the table; unknown GUIDs become `OTHER`. A malformed table is ERR_ATTEST_DEVICE_FAILED. */
export function parseSnpCertTable(table: Uint8Array): SnpCertEntry[] {
  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength)
  const out: SnpCertEntry[] = []
  const bad = (why: string): never => {
    throw new CofferError('ERR_ATTEST_DEVICE_FAILED', `SNP certificate table: ${why}`)
  }
  for (let i = 0; ; i++) {
    const at = i * ENTRY_SIZE
    if (i > MAX_ENTRIES || at + ENTRY_SIZE > table.length) bad('no terminating entry')
    const guid = Buffer.from(table.subarray(at, at + 16)).toString('hex')
    const offset = dv.getUint32(at + 16, true)
    const length = dv.getUint32(at + 20, true)
    if (/^0+$/.test(guid) && offset === 0 && length === 0) return out
    if (offset + length > table.length) bad(`entry ${i} points past the table`)
    out.push({ certType: TYPES.get(guid) ?? 'OTHER', data: table.slice(offset, offset + length) })
  }
}

/** Builds a table (test fixtures, and tools that hand certificates to a guest). */
export function encodeSnpCertTable(entries: readonly SnpCertEntry[]): Uint8Array {
  const guidOf = new Map([...TYPES].map(([g, t]) => [t, g]))
  const head = (entries.length + 1) * ENTRY_SIZE
  const total = head + entries.reduce((n, e) => n + e.data.length, 0)
  const out = new Uint8Array(total)
  const dv = new DataView(out.buffer)
  let off = head
  for (const [i, e] of entries.entries()) {
    const guid = guidOf.get(e.certType)
    if (!guid) throw new CofferError('ERR_INVALID_ARGUMENT', `no GUID for certificate type ${e.certType}`)
    out.set(Buffer.from(guid, 'hex'), i * ENTRY_SIZE)
    dv.setUint32(i * ENTRY_SIZE + 16, off, true)
    dv.setUint32(i * ENTRY_SIZE + 20, e.data.length, true)
    out.set(e.data, off)
    off += e.data.length
  }
  return out
}
