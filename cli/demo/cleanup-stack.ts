/**
 * What the demo must undo, last started first: a mount before the swtpm and KBS it needed, those
 * before the registry, the work directory last. `run()` tries every entry even when one fails, so
 * one stuck process never leaves the others running; it reports what failed instead of throwing.
 *
 * Child processes are also listed for a hard exit (a second Ctrl-C makes `process.exit` skip the
 * orderly path): on the process's `exit` event each child still listed gets a SIGTERM, which is
 * all a synchronous handler can do. A `coffer mount` server unmounts itself on SIGTERM.
 */
export class CleanupStack {
  private readonly entries: { name: string; undo: () => Promise<void> }[] = []
  private readonly children = new Map<number, string>()
  private readonly onExit = (): void => {
    for (const pid of this.children.keys()) {
      try {
        process.kill(pid, 'SIGTERM')
      } catch {
        // already gone
      }
    }
  }

  constructor() {
    process.on('exit', this.onExit)
  }

  /** Registers `undo` to run at cleanup, before everything registered earlier. */
  add(name: string, undo: () => Promise<void>): void {
    this.entries.push({ name, undo })
  }

  /** A child process this demo started: SIGTERMed on a hard exit until `undo` has stopped it. */
  addChild(name: string, pid: number, undo: () => Promise<void>): void {
    this.children.set(pid, name)
    this.add(name, async () => {
      await undo()
      this.children.delete(pid)
    })
  }

  /** Undoes everything, newest first; says what was undone and what failed. */
  async run(): Promise<{ done: string[]; failed: { name: string; error: unknown }[] }> {
    const done: string[] = []
    const failed: { name: string; error: unknown }[] = []
    for (const { name, undo } of this.entries.splice(0).reverse()) {
      try {
        await undo()
        done.push(name)
      } catch (error) {
        failed.push({ name, error })
      }
    }
    // A child that would not stop stays listed: the exit hook still signals it.
    if (this.children.size === 0) process.off('exit', this.onExit)
    return { done, failed }
  }
}
