/**
 * Child process for the cross-process tests in fs.test.ts (run with vite-node). Prints `ready`,
 * waits for the file `<root>/go`, then runs its job and prints one JSON line with the outcome.
 *
 *   race <root> <id> <keys>   putIfAbsent('session', `race/k<i>`, id) for each i; prints the keys won
 *   write <root> <rounds>     put('resource', 'torn/x/v', A or B) alternately; prints the count
 */
import { access } from 'node:fs/promises'
import { join } from 'node:path'
import { createFsStore } from '../../../plugins/kbs-store/fs/fs-store.js'

const [job, root, arg1, arg2] = process.argv.slice(2) as [string, string, string, string]
const store = await createFsStore({ root })
process.stdout.write('ready\n')
for (;;) {
  try {
    await access(join(root, 'go'))
    break
  } catch {
    await new Promise((r) => setTimeout(r, 5))
  }
}
if (job === 'race') {
  const won: number[] = []
  for (let i = 0; i < Number(arg2); i++) {
    if (await store.putIfAbsent('session', `race/k${i}`, Buffer.from(arg1))) won.push(i)
  }
  process.stdout.write(`${JSON.stringify({ won })}\n`)
} else if (job === 'write') {
  const a = Buffer.alloc(200 * 1024, 0xaa)
  const b = Buffer.alloc(333 * 1024, 0xbb)
  for (let i = 0; i < Number(arg1); i++) await store.put('resource', 'torn/x/v', i % 2 ? a : b)
  process.stdout.write(`${JSON.stringify({ wrote: Number(arg1) })}\n`)
}
await store.close()
