import type { Digest } from './digest.js'

/**
 * What a copy reports as it goes; the CLI draws bars from these or prints them as JSON lines
 * (`--json`). Sizes are bytes. Events never carry secrets.
 */
export type CopyEvent =
  | { type: 'manifest-resolved'; digest: Digest; mediaType: string; platform?: string }
  | { type: 'blob-start'; digest: Digest; size: number; mediaType: string }
  | { type: 'blob-progress'; digest: Digest; bytes: number; size: number }
  | { type: 'blob-done'; digest: Digest; size: number }
  | { type: 'blob-skipped'; digest: Digest; size: number; reason: 'exists' | 'mounted' }
  | { type: 'retry'; url: string; attempt: number; delayMs: number; reason: string }
  | { type: 'manifest-written'; digest: Digest; mediaType: string; top: boolean }
  | { type: 'done'; digest: Digest; mediaType: string }

export type CopyEventSink = (event: CopyEvent) => void
