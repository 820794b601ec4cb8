/**
 * skopeo (Go's flag package) writes boolean flags as `--tls-verify=false`. Commander knows
 * `--tls-verify` / `--no-tls-verify`; this maps the Go spelling onto those, for any flag.
 */
export function normalizeBoolFlags(argv: readonly string[]): string[] {
  return argv.map((arg) => {
    const m = /^--([a-z][a-z0-9-]*)=(true|false)$/i.exec(arg)
    if (!m) return arg
    return m[2]!.toLowerCase() === 'true' ? `--${m[1]}` : `--no-${m[1]}`
  })
}
