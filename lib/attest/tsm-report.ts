import { randomUUID } from 'node:crypto'
import * as fsp from 'node:fs/promises'
import { join } from 'node:path'
import { CofferError } from '../util/errors.js'
import { throwIfAborted, type Io } from '../util/io.js'

/**
 * The Linux configfs-tsm report interface (Documentation/ABI/testing/configfs-tsm, Linux ≥ 6.7):
 * one directory per request under /sys/kernel/config/tsm/report. Writing `inblob` (the 64
 * report-data bytes) makes the TEE driver produce `outblob` (SNP report or TDX quote) and, for
 * SNP, `auxblob` (the GHCB certificate table). `generation` counts writes, so a reader can tell
 * whether another writer raced it; the entry is removed with rmdir.
 */

export const TSM_REPORT_ROOT = '/sys/kernel/config/tsm/report'

/** An SNP report is 1184 bytes, a TDX quote ~5 KiB, an SNP cert table ~5 KiB. */
const MAX_TSM_BLOB_BYTES = 128 * 1024

/** The few file operations configfs needs; tests pass an in-memory "kernel". */
export interface TsmFs {
  mkdir(path: string): Promise<void>
  rmdir(path: string): Promise<void>
  readFile(path: string): Promise<Uint8Array>
  writeFile(path: string, data: Uint8Array): Promise<void>
}

export const NODE_TSM_FS: TsmFs = {
  mkdir: async (p) => {
    await fsp.mkdir(p)
  },
  rmdir: (p) => fsp.rmdir(p),
  readFile: (p) => fsp.readFile(p),
  writeFile: (p, d) => fsp.writeFile(p, d),
}

export interface TsmReport {
  readonly provider: string
  readonly outblob: Uint8Array
  /** Absent when the provider has none (TDX) or it is empty. */
  readonly auxblob?: Uint8Array
}

export interface TsmReportOptions extends Io {
  /** The provider the entry must report (`sev_guest`, `tdx_guest`); anything else fails. */
  readonly provider: string
  readonly root?: string
  readonly fs?: TsmFs
}

const deviceFailed = (why: string, cause?: unknown): never => {
  throw new CofferError('ERR_ATTEST_DEVICE_FAILED', `configfs-tsm: ${why}`, { cause })
}

function checkSize(b: Uint8Array, what: string): Uint8Array {
  if (b.length > MAX_TSM_BLOB_BYTES) deviceFailed(`${what} is larger than ${MAX_TSM_BLOB_BYTES} bytes`)
  return b
}

const generationOf = (b: Uint8Array) => Buffer.from(b).toString('latin1').trim()

/**
 * Requests one report: mkdir an entry, check its provider, write `inblob`, read `outblob` (and
 * `auxblob`), and fail if `generation` moved past our one write (another writer raced us). The
 * entry is always removed. Device errors are ERR_ATTEST_DEVICE_FAILED.
 */
export async function requestTsmReport(inblob: Uint8Array, options: TsmReportOptions): Promise<TsmReport> {
  const fs = options.fs ?? NODE_TSM_FS
  const entry = join(options.root ?? TSM_REPORT_ROOT, `coffer-${randomUUID()}`)
  throwIfAborted(options.signal)
  try {
    await fs.mkdir(entry)
  } catch (cause) {
    return deviceFailed(`cannot create a report entry under ${options.root ?? TSM_REPORT_ROOT}`, cause)
  }
  try {
    const provider = Buffer.from(await fs.readFile(join(entry, 'provider')))
      .toString('latin1')
      .trim()
    if (provider !== options.provider)
      deviceFailed(`provider is "${provider}", expected "${options.provider}"`)
    const before = generationOf(await fs.readFile(join(entry, 'generation')))
    await fs.writeFile(join(entry, 'inblob'), inblob)
    throwIfAborted(options.signal)
    const outblob = checkSize(await fs.readFile(join(entry, 'outblob')), 'outblob')
    let auxblob: Uint8Array | undefined
    try {
      auxblob = checkSize(await fs.readFile(join(entry, 'auxblob')), 'auxblob')
    } catch (err) {
      if (err instanceof CofferError) throw err
      auxblob = undefined // TDX has no auxblob attribute
    }
    const after = generationOf(await fs.readFile(join(entry, 'generation')))
    if (after !== String(Number(before) + 1))
      deviceFailed('another writer changed the request (generation moved)')
    if (outblob.length === 0) deviceFailed('the provider returned an empty outblob')
    return { provider, outblob, ...(auxblob && auxblob.length > 0 ? { auxblob } : {}) }
  } catch (err) {
    if (err instanceof CofferError) throw err
    return deviceFailed('report request failed', err)
  } finally {
    await fs.rmdir(entry).catch(() => undefined)
  }
}
