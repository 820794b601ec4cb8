import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { CofferError } from '../../lib/util/errors.js'
import { runBuilder } from '../demo/builder-steps.js'
import { CleanupStack } from '../demo/cleanup-stack.js'
import { planAttester, type AttesterChoice } from '../demo/guest-attester.js'
import { runGuest } from '../demo/guest-steps.js'
import type { DemoSession } from '../demo/session.js'
import { StepRunner } from '../demo/step-runner.js'
import type { CommandContext } from '../run.js'

const ATTESTER_CHOICES: readonly AttesterChoice[] = ['auto', 'tpm', 'sample']

/**
 * `coffer demo`: the whole story on embedded defaults, first as the image builder and KBS operator
 * (cli/demo/builder-steps.ts), then as the guest in its TEE (cli/demo/guest-steps.ts), each step
 * timed and reported, a summary at the end.
 *
 * Everything it starts (registry, KBS, swtpm, the mount server) it stops, and the mount goes, on
 * success, on a failure and on SIGINT/SIGTERM (the first signal aborts the current step; cleanup
 * then runs). The work directory is removed unless --workdir or --keep asked to keep it.
 */
export async function demoCommand(opts: Record<string, unknown>, ctx: CommandContext): Promise<void> {
  const choice = (opts.attester ?? 'auto') as AttesterChoice
  if (!ATTESTER_CHOICES.includes(choice))
    throw new CofferError('ERR_USAGE', `--attester must be one of ${ATTESTER_CHOICES.join(', ')}`)
  const given = typeof opts.workdir === 'string'
  // A second run into the same directory would meet the first one's registry, store and rootfs.
  if (given && (await readdir(opts.workdir as string).catch(() => [])).length > 0)
    throw new CofferError(
      'ERR_USAGE',
      `--workdir ${opts.workdir as string} is not empty: give a new or empty directory`,
    )
  const keep = given || opts.keep === true
  const work = given ? resolve(opts.workdir as string) : await mkdtemp(join(tmpdir(), 'coffer-demo-'))
  const cleanup = new CleanupStack()
  if (!keep) cleanup.add('work directory', () => rm(work, { recursive: true, force: true }))
  const processes: { name: string; pid: number }[] = []
  const session: DemoSession = {
    ctx,
    steps: new StepRunner(ctx),
    cleanup,
    work,
    started(name, pid) {
      processes.push({ name, pid })
      ctx.emit({ process: { name, pid } })
    },
  }
  ctx.emit({ start: { workdir: work, keep, pid: process.pid } })
  ctx.say(`coffer demo: working in ${work}${keep ? ' (kept afterwards)' : ''}`)

  let failure: unknown
  let result: Record<string, unknown> | undefined
  try {
    await mkdir(work, { recursive: true })
    const plan = await planAttester(choice)
    ctx.say(`attester: ${plan.name} (${plan.reason})\n\n— as the image builder and KBS operator —`)
    const image = await runBuilder(session, plan)
    const guest = await runGuest(session, plan, image)
    result = {
      digest: image.digest,
      encrypted: image.encryptedDigest,
      layers: image.layers,
      registry: image.registryHost,
      kbs: image.kbsUrl,
      attester: guest.attester,
      rootfs: guest.rootfs,
      volume: guest.volume,
      processes,
      workdir: work,
      kept: keep,
    }
  } catch (err) {
    failure = err
  }

  try {
    await session.steps.run(
      'cleanup',
      `clean up: stop what the demo started${keep ? '' : ', remove the work directory'}`,
      async () => {
        const { done, failed } = await cleanup.run()
        if (failed.length > 0) {
          const first = failed[0]!.error
          throw first instanceof CofferError
            ? first
            : new CofferError('ERR_INTERNAL', `cleanup failed: ${failed.map((f) => f.name).join(', ')}`, {
                cause: first,
              })
        }
        return done
      },
      (done) => done.filter((d) => !d.startsWith('KBS ')).join(', ') || 'nothing to undo',
      { always: true },
    )
  } catch (err) {
    failure ??= err
  }
  if (result && failure === undefined) ctx.emit({ result })
  session.steps.summary(failure === undefined ? 'ok' : ctx.signal.aborted ? 'interrupted' : 'failed')
  if (failure !== undefined) throw failure
  if (keep) ctx.say(`\nThe work directory is kept: ${work}`)
}
