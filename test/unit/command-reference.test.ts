/**
 * docs/reference.md lists every command with the help text the built CLI prints
 * (scripts/gen-command-reference.mjs). This fails when a command, flag or description changed
 * and the reference was not regenerated; and the check is shown to fail on a stale copy, so it
 * cannot pass vacuously. Needs `npm run build` (npm test builds first).
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const execFileP = promisify(execFile)
const SCRIPT = fileURLToPath(new URL('../../scripts/gen-command-reference.mjs', import.meta.url))
const REFERENCE = fileURLToPath(new URL('../../docs/reference.md', import.meta.url))
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))

/** Runs the generator in its own process (it loads the built CLI); resolves with the exit code. */
async function check(reference: string): Promise<{ code: number; stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [SCRIPT, '--check', '--reference', reference])
    return { code: 0, stderr: r.stderr }
  } catch (err) {
    const e = err as { code?: number; stderr?: string }
    return { code: e.code ?? 1, stderr: e.stderr ?? '' }
  }
}

describe('docs/reference.md command reference', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-command-reference-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('is what the built CLI prints (else: npm run build && node scripts/gen-command-reference.mjs)', async () => {
    expect(existsSync(CLI), 'dist/cli/main.js is missing: run npm run build').toBe(true)
    const r = await check(REFERENCE)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })

  it('names every command and subcommand of the CLI', () => {
    const doc = readFileSync(REFERENCE, 'utf8')
    for (const cmd of [
      'coffer copy',
      'coffer kbs serve',
      'coffer kbs set-reference-values',
      'coffer fs passwd',
      'coffer pull',
      'coffer image-service gc',
      'coffer csi serve',
      'coffer demo',
    ])
      expect(doc).toContain(`\n### ${cmd}\n`)
  })

  it('fails on a stale copy: a changed flag, a missing command, or lost markers', async () => {
    const doc = readFileSync(REFERENCE, 'utf8')
    const variants = {
      flag: doc.replace('--rootfs-mode <mode>', '--rootfs-kind <mode>'),
      command: doc.replace(/\n### coffer umount\n[\s\S]*?\n```\n/, '\n'),
      markers: doc.replace('<!-- END COMMANDS -->', ''),
    }
    for (const [what, text] of Object.entries(variants)) {
      expect(text, what).not.toBe(doc)
      const copy = join(dir, `${what}.md`)
      await writeFile(copy, text)
      expect((await check(copy)).code, what).not.toBe(0)
    }
  })
})
