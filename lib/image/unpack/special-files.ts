/**
 * Node has no mknod(2), mkfifo(3) or setxattr(2), so these run the coreutils / attr tools with an
 * argument vector (never a shell). Paths are absolute, so none can be mistaken for an option.
 * Each caller has already checked, with lstat, that nothing sits at `path` and that no parent is a
 * symlink; mknod(2) and setfattr -h do not follow a symlink at the final component either.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)
const TOOL_TIMEOUT_MS = 30_000

async function run(tool: string, args: string[]): Promise<void> {
  await execFileP(tool, args, { timeout: TOOL_TIMEOUT_MS, maxBuffer: 64 * 1024 })
}

/** Creates a char or block device (needs CAP_MKNOD). */
export async function makeDevice(path: string, kind: 'c' | 'b', major: number, minor: number): Promise<void> {
  await run('mknod', ['-m', '0600', path, kind, String(major), String(minor)])
}

export async function makeFifo(path: string): Promise<void> {
  await run('mkfifo', ['-m', '0600', path])
}

/** overlayfs marks an opaque directory with this xattr (needs CAP_SYS_ADMIN for `trusted.*`). */
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque'

/** Sets an xattr on `path` itself (never on a symlink's target). Needs Debian `attr`. */
export async function setXattr(path: string, name: string, value: string): Promise<void> {
  await run('setfattr', ['-h', '-n', name, '-v', value, path])
}
