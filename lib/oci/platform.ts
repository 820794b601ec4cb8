import { CofferError } from '../util/errors.js'
import type { Descriptor, Platform } from './schemas.js'

/** What a user asks for with `--platform os/arch[/variant]`. */
export interface PlatformSpec {
  readonly os: string
  readonly architecture: string
  readonly variant?: string
}

const NODE_ARCH: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  arm64: 'arm64',
  arm: 'arm',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  mips: 'mips',
  mipsel: 'mipsle',
  loong64: 'loong64',
}

/** Parses `os/arch[/variant]`, lowercased, as `docker --platform` and skopeo's override flags accept it. */
export function parsePlatform(value: string): PlatformSpec {
  const parts = value.trim().toLowerCase().split('/')
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new CofferError(
      'ERR_OCI_PLATFORM_INVALID',
      `invalid platform "${value}": expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7`,
    )
  }
  const [os, architecture, variant] = parts as [string, string, string?]
  return normalizePlatform({ os, architecture, ...(variant ? { variant } : {}) })
}

/** Canonical spellings (containerd `platforms.Normalize`): aarch64 → arm64, x86_64 → amd64, arm64/v8 → arm64. */
export function normalizePlatform(p: PlatformSpec): PlatformSpec {
  let architecture = p.architecture
  let variant = p.variant
  if (architecture === 'x86_64' || architecture === 'x86-64') architecture = 'amd64'
  if (architecture === 'aarch64') architecture = 'arm64'
  if (architecture === 'i386') architecture = '386'
  if (architecture === 'armhf') [architecture, variant] = ['arm', 'v7']
  if (architecture === 'armel') [architecture, variant] = ['arm', 'v6']
  if (architecture === 'arm64' && (variant === '8' || variant === 'v8' || variant === 'v8.0'))
    variant = undefined
  if (architecture === 'arm' && variant && /^[5-8]$/.test(variant)) variant = `v${variant}`
  if (architecture === 'amd64' && variant === 'v1') variant = undefined
  return { os: p.os, architecture, ...(variant ? { variant } : {}) }
}

/** The platform of the machine coffer runs on. */
export function hostPlatform(): PlatformSpec {
  const architecture = NODE_ARCH[process.arch] ?? process.arch
  let variant: string | undefined
  if (architecture === 'arm') {
    const armVersion = (process.config.variables as Record<string, unknown>).arm_version
    variant = `v${typeof armVersion === 'string' || typeof armVersion === 'number' ? armVersion : '7'}`
  }
  return {
    os: process.platform === 'win32' ? 'windows' : process.platform,
    architecture,
    ...(variant ? { variant } : {}),
  }
}

export function formatPlatform(p: PlatformSpec | Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`
}

/**
 * Variants acceptable for a wanted platform, best first (containers/image `platform_matcher.go`):
 * arm walks down from the wanted level to v5, then none; arm64's v8 is normalized away, so "none"
 * covers both spellings.
 */
function acceptableVariants(want: PlatformSpec): (string | undefined)[] {
  if (want.architecture === 'arm') {
    const level = Number((want.variant ?? 'v7').slice(1)) || 7
    const out: (string | undefined)[] = []
    for (let v = level; v >= 5; v--) out.push(`v${v}`)
    return [...out, undefined]
  }
  return want.variant ? [want.variant] : [undefined]
}

/**
 * Picks the manifest for `want` from an index: exact os+arch, best-ranked variant, first in index
 * order among equals (image-spec). An entry with no platform is a last resort; `unknown/unknown`
 * (BuildKit attestation manifests) never matches.
 */
export function selectManifest(manifests: readonly Descriptor[], want: PlatformSpec): Descriptor | undefined {
  const w = normalizePlatform(want)
  const ranks = acceptableVariants(w)
  let best: { desc: Descriptor; rank: number } | undefined
  let fallback: Descriptor | undefined
  for (const desc of manifests) {
    if (!desc.platform) {
      fallback ??= desc
      continue
    }
    const p = normalizePlatform(desc.platform)
    if (p.os !== w.os || p.architecture !== w.architecture) continue
    const rank = ranks.indexOf(p.variant)
    if (rank < 0) continue
    if (!best || rank < best.rank) best = { desc, rank }
  }
  return best?.desc ?? fallback
}

/** Like selectManifest, but throws ERR_OCI_PLATFORM_NOT_FOUND listing what the index offers. */
export function requireManifest(
  manifests: readonly Descriptor[],
  want: PlatformSpec,
  where: string,
): Descriptor {
  const found = selectManifest(manifests, want)
  if (found) return found
  const offered = manifests.map((d) => (d.platform ? formatPlatform(d.platform) : '(no platform)'))
  throw new CofferError(
    'ERR_OCI_PLATFORM_NOT_FOUND',
    `${where} has no image for ${formatPlatform(want)}; it offers ${offered.join(', ') || 'nothing'} (use --platform or --all)`,
  )
}
