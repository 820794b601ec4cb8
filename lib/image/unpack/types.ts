import type { Io } from '../../util/io.js'

/**
 * What to do with whiteouts (`.wh.NAME`) and opaque markers (`.wh..wh..opq`), image-spec layer.md:
 *
 * - `apply`: the destination already holds the lower layers (a materialized rootfs). A whiteout
 *   deletes NAME from it; an opaque marker deletes every child of its directory that this layer
 *   did not create, wherever the marker sits in the archive. Nothing is left on disk for them.
 * - `overlay`: the destination is one layer's own directory, to become an overlayfs lowerdir. A
 *   whiteout becomes a char device 0:0 named NAME and an opaque directory gets the xattr
 *   `trusted.overlay.opaque=y` (both need root; without it they are only recorded, with a warning).
 * - `record`: nothing on disk; whiteouts and opaque dirs are only listed in the result.
 *
 * In every mode the result lists them, so a materializer can replay a stored layer later
 * (`lib/image/rootfs.ts`) without reading device nodes or xattrs back.
 */
export type WhiteoutMode = 'apply' | 'overlay' | 'record'

export interface UnpackOptions extends Io {
  whiteouts: WhiteoutMode
  /**
   * Create char/block devices (root only) and FIFOs. Off by default: they are skipped with a
   * `DEVICE_SKIPPED` warning, as c/storage does in a user namespace.
   */
  allowDevices?: boolean
  /** Largest single regular file (default MAX_LAYER_ENTRY_BYTES). */
  maxEntrySize?: number
  /** Sum of regular-file sizes (default MAX_LAYER_TOTAL_BYTES). */
  maxTotalSize?: number
  /** Number of tar entries, whiteouts included (default MAX_LAYER_ENTRIES). */
  maxEntries?: number
  /**
   * Make every file and directory the layer wrote durable before `unpackLayer` returns (fsyncs, or
   * one syncfs for a layer of many files: `durability.ts`), so a commit that follows (a rename)
   * survives power loss. Off for a tree that is rebuilt after a crash anyway.
   */
  durable?: boolean
  /**
   * Write file content with blocking calls instead of through libuv's I/O pool: for a worker
   * thread that has nothing else to do, it spares two thread hand-offs per 256 KiB written.
   */
  blockingWrites?: boolean
  /** Called for every warning as it happens (they are also in the result). */
  onWarning?: (w: UnpackWarning) => void
}

export type UnpackWarningCode =
  /** A leading '/' was removed from an entry name (node-tar's TAR_ENTRY_INFO). */
  | 'ABSOLUTE_NAME_STRIPPED'
  /** A device node or FIFO was not created (not root, or `allowDevices` off). */
  | 'DEVICE_SKIPPED'
  /** PAX `SCHILY.xattr.*` records: Node has no xattr API, so they are kept in the result only. */
  | 'XATTR_NOT_APPLIED'
  /** AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`, …), skipped as c/storage does. */
  | 'AUFS_METADATA_SKIPPED'
  /** A whiteout or opaque marker could not be made overlay-style (not root); it is only recorded. */
  | 'WHITEOUT_NOT_MATERIALIZED'
  /** A whiteout named a path this same layer created: layer.md says it must not hide it. */
  | 'WHITEOUT_OF_OWN_ENTRY'
  /** An entry for the root directory itself (`./`); its attributes are ignored. */
  | 'ROOT_ENTRY_IGNORED'

export interface UnpackWarning {
  code: UnpackWarningCode
  path: string
  message: string
}

/** A hardlink whose target is not in this layer (only in `overlay`/`record` modes). */
export interface ExternalLink {
  path: string
  target: string
}

export interface UnpackResult {
  entries: number
  /** Bytes of regular-file content written. */
  bytes: number
  /** Cleaned paths (relative to the layer root) this layer whites out in lower layers. */
  whiteouts: string[]
  /** Directories whose lower-layer children this layer hides. */
  opaqueDirs: string[]
  /** Hardlinks to files of lower layers, left for the materializer to resolve. */
  externalLinks: ExternalLink[]
  /**
   * Parent directories this layer needed but did not declare (created 0755 root:root). When the
   * layer is applied over lower ones, such a directory must keep the lower one's attributes.
   */
  implicitDirs: string[]
  /** path → xattr name → value (base64 of the UTF-8 bytes as the PAX record was decoded). */
  xattrs: Record<string, Record<string, string>>
  warnings: UnpackWarning[]
}
