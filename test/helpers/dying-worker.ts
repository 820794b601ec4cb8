import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

/** The two ways a worker thread dies: it exits (code 3), or it throws `boom` uncaught. */
export const WORKER_DEATHS = [
  ['exit', 'process.exit(3)'],
  ['throw', 'setTimeout(() => { throw new Error("boom") })'],
] as const

/**
 * Writes a worker entry file under `dir` whose message handler is `onMessage(death)`: source code
 * of a function of one message that runs `death` at the point the test wants the thread to die.
 */
export async function writeDyingWorker(
  dir: string,
  name: string,
  onMessage: string,
  imports = '',
): Promise<URL> {
  const url = pathToFileURL(join(dir, `dying-${name}.mjs`))
  await writeFile(
    url,
    `import { parentPort } from 'node:worker_threads'\n${imports}parentPort.on('message', ${onMessage})\n`,
  )
  return url
}
