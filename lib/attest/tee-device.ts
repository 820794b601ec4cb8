import { access } from 'node:fs/promises'

/** Whether every path exists (never throws): a TEE attester's `detect()`. */
export async function allExist(paths: readonly string[]): Promise<boolean> {
  for (const p of paths) {
    try {
      await access(p)
    } catch {
      return false
    }
  }
  return true
}
