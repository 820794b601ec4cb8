import { join } from 'node:path'
import { DEFAULT_AK_HANDLE, DEFAULT_EK_HANDLE } from './constants.js'
import { handleExists, readPublic, withTempDir, type TpmTarget } from './device.js'
import { handleArg, runTpm2Tool } from './tpm2-tools.js'

export interface ProvisionAkOptions {
  /** Persistent handle for the AK (default 0x81010002, where the attester looks). */
  readonly akHandle?: number
  /** Persistent handle of the EK the AK is created under (default 0x81010001); created if empty. */
  readonly ekHandle?: number
  /** AK algorithm: RSA-2048 (trustee's verifier accepts only this) or ECC NIST P-256. */
  readonly keyType?: 'rsa' | 'ecc'
  /** Signing scheme fixed in the AK; default rsassa for RSA, ecdsa for ECC. */
  readonly scheme?: 'rsassa' | 'rsapss' | 'ecdsa'
  /** Evict and recreate an AK already at `akHandle`; otherwise the existing one is kept. */
  readonly replace?: boolean
}

export interface ProvisionedAk {
  /** DER SubjectPublicKeyInfo of the AK: what a verifier's trusted-AK list holds (or its sha256). */
  readonly akPublicDer: Uint8Array
  /** False when an AK was already at the handle and was kept. */
  readonly created: boolean
}

/**
 * Creates an EK (unless one is persisted at `ekHandle`) and an AK under it, and persists the AK
 * at `akHandle`, the steps of trustee's kbs/test/setup-swtpm.sh with tpm2-tools:
 * `tpm2_createek`, `tpm2_createak -C <ek>`, `tpm2_evictcontrol -C o`. Idempotent: an AK already at
 * the handle is kept unless `replace`. Needs owner authorization to be empty, as on a fresh TPM.
 */
export async function provisionAk(t: TpmTarget, o: ProvisionAkOptions = {}): Promise<ProvisionedAk> {
  const akHandle = o.akHandle ?? DEFAULT_AK_HANDLE
  const ekHandle = o.ekHandle ?? DEFAULT_EK_HANDLE
  const keyType = o.keyType ?? 'rsa'
  const scheme = o.scheme ?? (keyType === 'rsa' ? 'rsassa' : 'ecdsa')

  if (await handleExists(t, akHandle)) {
    if (!o.replace) return { akPublicDer: (await readPublic(t, akHandle)).der, created: false }
    await runTpm2Tool('tpm2_evictcontrol', ['-Q', '-C', 'o', '-c', handleArg(akHandle)], t)
  }
  if (!(await handleExists(t, ekHandle))) {
    await runTpm2Tool('tpm2_createek', ['-Q', '-c', handleArg(ekHandle), '-G', 'rsa'], t)
  }
  await withTempDir(async (dir) => {
    const ctx = join(dir, 'ak.ctx')
    let failed = false
    try {
      await runTpm2Tool(
        'tpm2_createak',
        ['-Q', '-C', handleArg(ekHandle), '-c', ctx, '-G', keyType, '-g', 'sha256', '-s', scheme],
        t,
      )
      await runTpm2Tool('tpm2_evictcontrol', ['-Q', '-C', 'o', '-c', ctx, handleArg(akHandle)], t)
    } catch (err) {
      failed = true
      throw err
    } finally {
      // tpm2_createak and tpm2_evictcontrol leave the AK loaded as a transient object. Behind the
      // kernel's resource manager (/dev/tpmrm0) it goes away with the connection; talking to the
      // TPM directly (swtpm, /dev/tpm0) it stays, and after two provisionings the TPM is out of
      // object slots (TPM_RC_OBJECT_MEMORY). Nothing else can be using transients then, so flush all.
      // A flush failure must not hide the error that made provisioning fail.
      await runTpm2Tool('tpm2_flushcontext', ['-t'], t).catch((err: unknown) => {
        if (!failed) throw err
      })
    }
  })
  return { akPublicDer: (await readPublic(t, akHandle)).der, created: true }
}
