/**
 * Which paths are mount points, read from /proc/self/mountinfo (proc(5)): the kernel's view, so a
 * mount made by a child process (coffer mount) or by kubelet shows up here as well.
 */
import { readFile } from 'node:fs/promises'

/**
 * The mount points in a mountinfo text. Field 5 is the mount point, with space, tab, newline and
 * backslash written as octal escapes (`\040`, `\011`, `\012`, `\134`).
 */
export function parseMountPoints(text: string): Set<string> {
  const points = new Set<string>()
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4]
    if (field)
      points.add(field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
  }
  return points
}

/** Whether `path` (absolute, symlinks resolved) is a mount point right now. */
export async function isMountPoint(path: string, mountinfo = '/proc/self/mountinfo'): Promise<boolean> {
  return parseMountPoints(await readFile(mountinfo, 'utf8')).has(path)
}
