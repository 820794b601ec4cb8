/**
 * The demo as the guest inside the TEE: it attests to the KBS (a software TPM when one can be
 * started, else the sample attester with its warning), then runs `coffer pull`'s machinery with the
 * signature policy, its cosign key and the layer KEK all released by the KBS after attestation,
 * checks the rootfs against the sample image, and finally mounts an encrypted ephemeral volume
 * (served by a `coffer mount` child), writes to it, shows the ciphertext and unmounts it.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeJwt } from 'jose'
import { openLayerStore } from '../../lib/image/layer-store/index.js'
import { pullImage, type PullEvent } from '../../lib/image/pull.js'
import { trustMaterial } from '../../lib/image/trust-material.js'
import { KbsClient } from '../../lib/kbs/client.js'
import { parseImageName } from '../../lib/oci/image-name.js'
import { loadRegistriesD } from '../../lib/sign/registries-d.js'
import { cofferMountpoints } from '../../lib/storage/mount/state.js'
import { CofferError } from '../../lib/util/errors.js'
import { humanBytes } from '../progress.js'
import { POLICY_URI, type BuiltImage } from './builder-steps.js'
import {
  createGuestAttester,
  provisionTpmGuest,
  sampleGuestTrust,
  type AttesterPlan,
  type GuestTrust,
} from './guest-attester.js'
import { startEphemeralMount } from './mount-server.js'
import { checkSampleRootfs, type RootfsEntry } from './sample-rootfs.js'
import type { DemoSession } from './session.js'
import { startSwtpm, type Swtpm } from './swtpm.js'
import { proveEncryptedVolume, type VolumeProof } from './volume-proof.js'

export interface GuestOutcome {
  attester: AttesterPlan
  rootfs: { path: string; entries: RootfsEntry[] }
  volume: VolumeProof & { mountpoint: string; backing: string }
}

export async function runGuest(s: DemoSession, plan: AttesterPlan, image: BuiltImage): Promise<GuestOutcome> {
  const { steps, work, ctx } = s
  ctx.say('\n— as the guest, in the TEE —')
  const warnings: string[] = []
  let tpm: Swtpm | undefined
  const trust: GuestTrust = await steps.run(
    'attester',
    plan.name === 'tpm'
      ? "prepare the guest's TPM: start swtpm, provision an attestation key, measure the boot into PCR 11"
      : 'prepare the guest attester: sample',
    async () => {
      if (plan.name === 'sample') return sampleGuestTrust()
      tpm = await startSwtpm({ parentDir: work })
      const t = tpm
      s.cleanup.addChild(`swtpm (pid ${t.pid})`, t.pid, () => t.stop())
      s.started('swtpm', t.pid)
      return provisionTpmGuest(t, ctx)
    },
    (t) => t.facts,
  )

  await steps.run(
    'kbs-trust',
    '(KBS operator) trust this guest: its reference values and the resource policy (admin API)',
    async () => {
      if (Object.keys(trust.referenceValues).length > 0)
        await image.admin.setReferenceValues(trust.referenceValues, ctx)
      await image.admin.setPolicy(
        JSON.stringify({
          version: 'coffer.dev/kbs-resource-policy/v1',
          rules: [
            {
              name: 'the demo guest gets the demo keys',
              effect: 'allow',
              resources: ['demo/*/*'],
              when: trust.when,
            },
          ],
        }),
        ctx,
      )
    },
    () => [
      `allow demo/*/* when ${trust.when}`,
      ...Object.entries(trust.referenceValues).map(
        ([k, v]) => `reference value ${k} = ${v.join(', ').slice(0, 16)}…`,
      ),
    ],
  )

  const attester = await createGuestAttester(plan, tpm, (w) => warnings.push(w))
  const guest = new KbsClient({ url: image.kbsUrl, attester })
  s.cleanup.add('KBS client', () => guest.close())
  await steps.run(
    'attest',
    `attest to the KBS with the ${plan.name} attester and receive an attestation token`,
    () => guest.token(ctx),
    (token) => [
      describeToken(token),
      ...warnings.splice(0).map((w) => `⚠ ${w.replace(/^coffer: WARNING: /, '')}`),
    ],
  )

  const rootfsDir = join(work, 'guest', 'bundle')
  const pullLines: string[] = []
  const pulled = await steps.run(
    'pull',
    `pull (coffer pull): policy from ${POLICY_URI}, verify, decrypt with the KBS-released key, unpack`,
    async () => {
      const { keyWrappers } = await import('../../plugins/keywraps.js')
      const { createKbsKeyWrapper } = await import('../../plugins/keywrap/kbs/index.js')
      const material = trustMaterial(POLICY_URI, guest)
      const result = await pullImage(parseImageName(image.encryptedRef), {
        access: {},
        store: await openLayerStore(join(work, 'guest', 'store')),
        rootfsDir,
        // A plain tree rather than an overlay mount: nothing stays mounted when --keep leaves it for inspection.
        rootfsMode: 'materialize',
        trust: {
          policy: await material.policy(ctx),
          resolveKey: material.resolveKey,
          registriesD: await loadRegistriesD(image.registriesD),
        },
        decrypt: {
          wrappers: keyWrappers().map((w) =>
            w.name === 'kbs' ? createKbsKeyWrapper((kid, io) => guest.getResource(kid, io)) : w,
          ),
          config: {},
        },
        signal: ctx.signal,
        onEvent: (e) => {
          const line = describePullEvent(e)
          if (line) pullLines.push(line)
        },
      })
      if (!result.rootfs) throw new CofferError('ERR_INTERNAL', 'the pull built no rootfs')
      const entries = await checkSampleRootfs(result.rootfs.path)
      return { result, rootfs: result.rootfs.path, entries }
    },
    (p) => [
      p.result.imageDigest,
      ...pullLines,
      `rootfs ${p.rootfs} (${p.result.rootfs?.kind}), equal to the sample image:`,
      ...p.entries.filter((e) => e.type !== 'directory').map(describeEntry),
      ...warnings.splice(0).map((w) => `⚠ ${w.replace(/^coffer: WARNING: /, '')}`),
    ],
  )

  const mountpoint = join(work, 'guest', 'volume')
  const backing = join(work, 'guest', 'volume.backing')
  const server = await steps.run(
    'volume-mount',
    'mount an encrypted ephemeral volume (coffer mount --ephemeral: random key, in memory only)',
    async () => {
      await mkdir(mountpoint, { recursive: true })
      const m = await startEphemeralMount(mountpoint, backing, join(work, 'guest', 'mount-state'), ctx)
      s.cleanup.addChild(`mount server (pid ${m.pid})`, m.pid, () => m.stop())
      s.started('mount server', m.pid)
      return m
    },
    (m) => `${m.mountpoint}, served by pid ${m.pid}; ciphertext in ${backing}`,
  )

  const proof = await steps.run(
    'volume-write',
    'write a file into the volume, look at the backing directory, read the file back',
    () =>
      proveEncryptedVolume(
        server.mountpoint,
        backing,
        `Written inside the TEE by coffer demo at ${new Date().toISOString()}.\n`,
      ),
    (p) => [
      `${p.file}: ${JSON.stringify(p.plaintext)}`,
      `backing holds ${p.backingNames.length} entries: ${p.backingNames.map((n) => (n.length > 40 ? `${n.slice(0, 40)}…` : n)).join(', ')}`,
      `${p.encryptedName.slice(0, 24)}… holds ${Buffer.from(p.ciphertext, 'base64').length} bytes of ciphertext: ${Buffer.from(p.ciphertext, 'base64').subarray(0, 24).toString('hex')}…`,
      `read back through the mount: equal`,
    ],
  )

  await steps.run(
    'volume-unmount',
    'unmount the volume: its key leaves memory and its ciphertext is removed',
    async () => {
      await server.stop()
      if ((await cofferMountpoints()).has(server.mountpoint))
        throw new CofferError('ERR_STORAGE_UNMOUNT_FAILED', `${server.mountpoint} is still mounted`)
    },
    () => `${server.mountpoint} unmounted, pid ${server.pid} exited`,
  )

  return {
    attester: plan,
    rootfs: { path: pulled.rootfs, entries: pulled.entries },
    volume: { ...proof, mountpoint: server.mountpoint, backing },
  }
}

/** The EAR token's verdict: status and trust vector of the TEE it appraised. */
function describeToken(token: string): string {
  try {
    const claims = decodeJwt(token) as { submods?: Record<string, Record<string, unknown>> }
    const cpu0 = claims.submods?.cpu0 ?? {}
    const vector = Object.entries((cpu0['ear.trustworthiness-vector'] as Record<string, number>) ?? {})
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')
    return `EAR token, status ${String(cpu0['ear.status'])}${vector ? ` (${vector})` : ''}`
  } catch {
    return `token of ${token.length} bytes`
  }
}

/** One line per verdict and per finished layer; start and progress events are not news here. */
function describePullEvent(e: PullEvent): string | undefined {
  if (e.type === 'verified') return `signature policy accepted ${e.manifestDigest} (${e.scope})`
  if (e.type === 'layer')
    return `layer ${e.diffId.slice(0, 19)}… ${humanBytes(e.size)} decrypted, checked and ${e.state}`
  return undefined
}

function describeEntry(e: RootfsEntry): string {
  const mode = e.mode.toString(8).padStart(4, '0')
  return e.type === 'symlink'
    ? `  /${e.path} -> ${e.linkname}`
    : `  /${e.path} ${mode} ${e.size} bytes: ${JSON.stringify(e.firstLine)}${e.firstLine!.length < e.size! - 1 ? '…' : ''}`
}
