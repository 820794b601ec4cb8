import { createHash } from 'node:crypto'
import { CofferError } from '../../util/errors.js'
import { hex } from '../reference-check.js'

/**
 * The CC event log (ACPI CCEL table data, TCG PC Client "crypto agile" format) and its replay
 * into the TD's RTMRs, as trustee does before trusting RTMR values (deps/eventlog, verifier
 * tdx `replay_and_match`).
 *
 *   first event (TCG_PCR_EVENT, SHA-1 layout): mr u32 ‖ type u32 (EV_NO_ACTION) ‖ digest[20] ‖
 *     size u32 ‖ TCG_EfiSpecIDEvent (…, algorithm count u32 at 24, {alg u16, size u16}*)
 *   then TCG_PCR_EVENT2: mr u32 ‖ type u32 ‖ count u32 ‖ {alg u16 ‖ digest}* ‖ size u32 ‖ data
 *   the log ends at its end, or at 8 bytes of 0x00 or 0xFF (unused table space).
 *
 * CC measurement register index 1..4 is RTMR0..3 (index 0 is MRTD, not extended by events).
 */

/** TCG algorithm IDs. */
const TPM_ALG_SHA384 = 0x000c
const EV_NO_ACTION = 0x3
/** More events than this is not a boot log. */
export const MAX_CCEL_EVENTS = 8192

export interface CcelEvent {
  /** CC measurement register index: 1..4 = RTMR0..3. */
  readonly mrIndex: number
  readonly eventType: number
  /** The SHA-384 digest the event extended, when it has one. */
  readonly sha384?: Uint8Array
  readonly data: Uint8Array
}

const invalid = (why: string): never => {
  throw new CofferError('ERR_ATTEST_EVIDENCE_INVALID', `TDX CC event log: ${why}`)
}

/** Parses the log; malformed input is ERR_ATTEST_EVIDENCE_INVALID. */
export function parseCcel(log: Uint8Array): CcelEvent[] {
  const dv = new DataView(log.buffer, log.byteOffset, log.byteLength)
  let off = 0
  const need = (n: number, what: string) => {
    if (off + n > log.length) invalid(`${what} runs past the end`)
    const at = off
    off += n
    return at
  }
  const u16 = (what: string) => dv.getUint16(need(2, what), true)
  const u32 = (what: string) => dv.getUint32(need(4, what), true)

  // === the Spec ID event: which digest algorithms each later event carries, and their sizes
  u32('first event')
  if (u32('first event') !== EV_NO_ACTION) invalid('the first event is not the Spec ID event')
  need(20, 'first event digest')
  const specSize = u32('Spec ID event size')
  const spec = need(specSize, 'Spec ID event')
  if (specSize < 28) invalid('the Spec ID event is too short')
  const algCount = dv.getUint32(spec + 24, true)
  if (28 + algCount * 4 > specSize) invalid('the Spec ID event lists more algorithms than it holds')
  const sizes = new Map<number, number>()
  for (let i = 0; i < algCount; i++) {
    sizes.set(dv.getUint16(spec + 28 + 4 * i, true), dv.getUint16(spec + 30 + 4 * i, true))
  }
  if (sizes.get(TPM_ALG_SHA384) !== 48) invalid('the log does not record SHA-384 digests')

  // === the events
  const events: CcelEvent[] = []
  while (off + 8 <= log.length) {
    const lo = dv.getUint32(off, true)
    const hi = dv.getUint32(off + 4, true)
    if ((lo === 0 && hi === 0) || (lo === 0xffffffff && hi === 0xffffffff)) break
    if (events.length >= MAX_CCEL_EVENTS) invalid(`more than ${MAX_CCEL_EVENTS} events`)
    const mrIndex = u32('event')
    const eventType = u32('event')
    const count = u32('digest count')
    let sha384: Uint8Array | undefined
    for (let i = 0; i < count; i++) {
      const alg = u16('digest algorithm')
      const size =
        sizes.get(alg) ?? invalid(`an event uses algorithm 0x${alg.toString(16)} the header does not list`)
      const at = need(size, 'digest')
      if (alg === TPM_ALG_SHA384) sha384 = log.slice(at, at + size)
    }
    const size = u32('event size')
    const at = need(size, 'event data')
    events.push({ mrIndex, eventType, ...(sha384 ? { sha384 } : {}), data: log.slice(at, at + size) })
  }
  return events
}

/** RTMR0..3 as the events extend them: RTMR = SHA-384(RTMR ‖ digest), from 48 zero bytes. */
export function replayRtmrs(events: readonly CcelEvent[]): Uint8Array[] {
  const rtmr = [0, 1, 2, 3].map(() => new Uint8Array(48))
  for (const e of events) {
    // EV_NO_ACTION events are informational and never extended (TCG PC Client spec).
    if (e.eventType === EV_NO_ACTION || e.mrIndex < 1 || e.mrIndex > 4 || !e.sha384) continue
    const i = e.mrIndex - 1
    rtmr[i] = createHash('sha384').update(rtmr[i]!).update(e.sha384).digest()
  }
  return rtmr
}

/** Compact claims for the token: one entry per event. */
export function ccelClaims(events: readonly CcelEvent[]): Record<string, unknown>[] {
  return events.map((e) => ({
    mr_index: e.mrIndex,
    event_type: e.eventType,
    ...(e.sha384 ? { digest: hex(e.sha384) } : {}),
  }))
}
