/**
 * A real software TPM for tests: the demo's swtpm launcher (cli/demo/swtpm.ts), with its state in
 * a fresh temp directory. Always `stop()` it (afterAll): that kills only this swtpm, by pid, and
 * removes its state. A missing swtpm makes `startSwtpm` reject, so a test fails rather than skips.
 */
export { startSwtpm, type Swtpm } from '../../cli/demo/swtpm.js'
