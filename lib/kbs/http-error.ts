import { CofferError, type CofferErrorCode } from '../util/errors.js'
import { ErrorInformationSchema } from './protocol.js'

/**
 * A KBS's non-200 answer as a coded error: its ErrorInformation (`type`'s last segment and
 * `detail`, truncated) when the body has one, the status alone otherwise. 404 → not found, 401
 * PolicyDeny → denied, other 401 → unauthenticated, 413 → too large, 5xx → unavailable.
 */
export function kbsHttpError(status: number, body: Buffer, what: string): CofferError {
  let detail = `HTTP ${status}`
  try {
    const info = ErrorInformationSchema.safeParse(JSON.parse(body.toString('utf8')))
    if (info.success) detail = `${info.data.type.split('/').pop()}: ${info.data.detail.slice(0, 500)}`
  } catch {
    // keep the status alone
  }
  const code: CofferErrorCode =
    status === 404
      ? 'ERR_KBS_RESOURCE_NOT_FOUND'
      : status === 401 && detail.startsWith('PolicyDeny')
        ? 'ERR_KBS_DENIED'
        : status === 401
          ? 'ERR_KBS_UNAUTHORIZED'
          : status === 413
            ? 'ERR_TOO_LARGE'
            : status >= 500
              ? 'ERR_KBS_UNREACHABLE'
              : 'ERR_KBS_PROTOCOL'
  return new CofferError(code, `KBS refused ${what}: ${detail}`)
}
