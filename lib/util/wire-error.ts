import { CODES, CofferError, type CofferErrorCode } from './errors.js'

/**
 * An error as it crosses a worker-thread boundary. Structured clone keeps neither the class nor
 * the code of an Error, so the code travels beside the message and the error is rebuilt on arrival.
 */
export interface WireError {
  readonly message: string
  /** A CofferError's code, or a system error's (ENOSPC, EACCES). */
  readonly code?: string
  readonly coffer: boolean
}

export function toWire(err: unknown): WireError {
  if (err instanceof CofferError) return { message: err.message, code: err.code, coffer: true }
  const e = err as NodeJS.ErrnoException
  return {
    message: e instanceof Error ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    coffer: false,
  }
}

export function fromWire(wire: WireError): Error {
  if (wire.coffer && wire.code !== undefined && wire.code in CODES)
    return new CofferError(wire.code as CofferErrorCode, wire.message)
  const err = new Error(wire.message) as NodeJS.ErrnoException
  if (wire.code !== undefined) err.code = wire.code
  return err
}
