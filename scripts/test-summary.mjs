// Prints vitest's totals as one plain line ("N passed, N failed, N skipped") after the run, so CI
// logs end with a count any reader can parse. vitest.config.ts writes the JSON report it reads.
import { readFileSync } from 'node:fs'

const report = JSON.parse(readFileSync(new URL('../.tmp/vitest-report.json', import.meta.url), 'utf8'))
const skipped = report.numPendingTests + report.numTodoTests
console.log(
  `${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`,
)
if (process.env.CI === 'true' && skipped > 0) {
  console.error('CI=true: no test may skip')
  process.exit(1)
}
