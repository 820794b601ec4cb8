/**
 * Which attester the demo's guest uses, and what the KBS must know to trust it.
 *
 * - `tpm`, when swtpm and tpm2-tools are installed: a software TPM stands in for the guest's TPM.
 *   Its attestation key is provisioned (EK + AK, as trustee's setup-swtpm.sh does) and its "boot"
 *   is measured into PCR 11 (where systemd-stub measures a unified kernel image). The builder knows
 *   that measurement, so it computes the PCR 11 reference value itself, and the KBS releases keys
 *   only to this AK with this PCR value.
 * - `sample` otherwise: evidence backed by nothing, accepted only because the demo's KBS is told to
 *   (allow_sample), with the attester's warning printed on every use.
 */
import { createHash } from 'node:crypto'
import { access, constants, readdir } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { extendPcr } from '../../lib/attest/tpm/device.js'
import { provisionAk } from '../../lib/attest/tpm/provision.js'
import type { Attester } from '../../lib/attest/types.js'
import { CofferError } from '../../lib/util/errors.js'
import type { Io } from '../../lib/util/io.js'
import type { Swtpm } from './swtpm.js'

export type AttesterChoice = 'auto' | 'tpm' | 'sample'

/** What the tpm attester and AK provisioning run (lib/attest/tpm), and the TPM itself. */
const TPM_PROGRAMS = [
  'swtpm',
  'tpm2_createek',
  'tpm2_createak',
  'tpm2_evictcontrol',
  'tpm2_flushcontext',
  'tpm2_readpublic',
  'tpm2_quote',
  'tpm2_pcrextend',
]

/** tpm2-tools reach swtpm through this TCTI, loaded at run time (Debian: libtss2-tcti-swtpm0). */
const SWTPM_TCTI_LIBRARY = 'libtss2-tcti-swtpm.so.0'
/** Where the dynamic loader finds it: the usual directories and their multiarch subdirectories. */
const LIBRARY_DIRS = ['/usr/lib', '/usr/local/lib', '/lib']

/** The PCR the guest's stand-in boot measurement goes into. */
export const BOOT_PCR = 11

/** The guest's stand-in boot measurement: what a measured boot would extend into BOOT_PCR. */
export const BOOT_MEASUREMENT = createHash('sha256')
  .update('coffer demo guest: kernel, initrd, command line')
  .digest()

export interface AttesterPlan {
  name: 'tpm' | 'sample'
  /** Why this attester, in words for the user. */
  reason: string
}

/** Chooses the attester from the flag and what is installed (a PATH lookup; nothing is started). */
export async function planAttester(choice: AttesterChoice): Promise<AttesterPlan> {
  if (choice === 'sample') return { name: 'sample', reason: '--attester sample was given' }
  const missing = await missingPrograms(TPM_PROGRAMS)
  if (!(await hasLibrary(SWTPM_TCTI_LIBRARY))) missing.push(SWTPM_TCTI_LIBRARY)
  if (missing.length === 0)
    return {
      name: 'tpm',
      reason: 'swtpm and tpm2-tools are installed: a software TPM stands in for the guest TPM',
    }
  if (choice === 'tpm')
    throw new CofferError(
      'ERR_NOT_FOUND',
      `--attester tpm needs swtpm and tpm2-tools; missing: ${missing.join(', ')} (scripts/install-system-deps.sh)`,
    )
  return {
    name: 'sample',
    reason: `no TPM to use (missing: ${missing.join(', ')}), so the sample attester, which proves nothing`,
  }
}

export interface GuestTrust {
  /** Reference values the KBS appraises this guest's evidence with. */
  referenceValues: Record<string, string[]>
  /** The resource-policy condition under which this guest gets the demo's keys. */
  when: string
  /** What was provisioned, for the narration. */
  facts: string[]
}

/**
 * Provisions the software TPM as the guest's: an AK at the default handle (where the tpm attester
 * looks), the boot measurement extended into PCR 11. Returns what the KBS must be told.
 */
export async function provisionTpmGuest(tpm: Swtpm, o: Io = {}): Promise<GuestTrust> {
  const target = { tcti: tpm.tcti, ...(o.signal ? { signal: o.signal } : {}) }
  const { akPublicDer } = await provisionAk(target)
  await extendPcr(target, BOOT_PCR, BOOT_MEASUREMENT)
  const fingerprint = createHash('sha256').update(akPublicDer).digest('hex')
  const pcr = expectedPcr(BOOT_MEASUREMENT)
  return {
    referenceValues: { 'tpm.trusted_ak': [fingerprint], [`tpm.pcr${BOOT_PCR}`]: [pcr] },
    when: 'tee == "tpm" && trust.hardware == 2 && trust.executables == 3',
    facts: [
      `swtpm pid ${tpm.pid}, TCTI ${tpm.tcti}`,
      `AK (RSA-2048, persisted at 0x81010002) sha256:${fingerprint.slice(0, 16)}…`,
      `PCR ${BOOT_PCR} extended with the boot measurement sha256:${BOOT_MEASUREMENT.toString('hex').slice(0, 16)}…`,
    ],
  }
}

/** The sample TEE: no reference values; the policy can only name the TEE type. */
export function sampleGuestTrust(): GuestTrust {
  return {
    referenceValues: {},
    when: 'tee == "sample"',
    facts: ['⚠ no hardware behind it: its evidence proves nothing, and it warns on every use'],
  }
}

/** The attester the guest attests with, for the plan. */
export async function createGuestAttester(
  plan: AttesterPlan,
  tpm: Swtpm | undefined,
  warn: (line: string) => void,
): Promise<Attester> {
  if (plan.name === 'tpm') {
    if (!tpm) throw new CofferError('ERR_INTERNAL', 'the tpm attester needs the software TPM')
    const { createAttester } = await import('../../plugins/index.js')
    return createAttester('tpm', { tcti: tpm.tcti })
  }
  const { createSampleAttester } = await import('../../plugins/attester/sample/index.js')
  return createSampleAttester(warn)
}

/** A PCR extended once from its reset value (32 zero bytes): sha256(zeros ‖ measurement). */
function expectedPcr(measurement: Buffer): string {
  return createHash('sha256').update(Buffer.alloc(32)).update(measurement).digest('hex')
}

async function missingPrograms(names: readonly string[]): Promise<string[]> {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean)
  const missing: string[] = []
  for (const name of names) {
    let found = false
    for (const dir of dirs) {
      if (
        await access(join(dir, name), constants.X_OK).then(
          () => true,
          () => false,
        )
      ) {
        found = true
        break
      }
    }
    if (!found) missing.push(name)
  }
  return missing
}

async function hasLibrary(file: string): Promise<boolean> {
  for (const dir of LIBRARY_DIRS) {
    const multiarch = (await readdir(dir).catch(() => [])).filter((d) => d.endsWith('-linux-gnu'))
    for (const d of [dir, ...multiarch.map((m) => join(dir, m))])
      if (
        await access(join(d, file)).then(
          () => true,
          () => false,
        )
      )
        return true
  }
  return false
}
