import { readFile } from 'node:fs/promises'
import { parse as parseToml } from 'smol-toml'
import { CofferError, type CofferErrorCode } from './errors.js'

/** A TOML configuration file as a plain object; unreadable or invalid → `code`, naming the file. */
export async function readTomlFile(path: string, what: string, code: CofferErrorCode): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new CofferError(
      code,
      `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      { cause: err },
    )
  }
  try {
    return parseToml(text)
  } catch (err) {
    // smol-toml knows where it stopped; name the place so the user need not search for it.
    const { line, column } = err as { line?: number; column?: number }
    const at = line === undefined ? '' : `:${line}${column === undefined ? '' : `:${column}`}`
    const why = (err as Error).message.split('\n')[0]!.replace(/^Invalid TOML document: /, '')
    throw new CofferError(code, `${path}${at} is not valid TOML: ${why}`, { cause: err })
  }
}
