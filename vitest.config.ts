import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', 'json'],
    outputFile: { json: '.tmp/vitest-report.json' },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Interop suites start real registries; keep parallelism to the 2-core CI machine.
    maxWorkers: 2,
    minWorkers: 1,
  },
})
