/**
 * deploy/: every Kubernetes manifest parses, has the kinds and fields its API needs, and is
 * consistent with itself and with the code: selectors match labels, mounts name declared volumes,
 * named ports exist, the registrar's sockets are the driver's endpoint, the StorageClass's
 * parameters pass the driver's own checks, and the KBS config passes the KBS's own parser. Each
 * check is also run on a broken copy, so a check that cannot fail would show.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { basename, dirname, join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadAll } from 'js-yaml'
import { parse as parseToml } from 'smol-toml'
import { describe, expect, it } from 'vitest'
import { keyOf } from '../../lib/csi/controller.js'
import { DRIVER_NAME } from '../../lib/csi/driver.js'
import { socketPathOf } from '../../lib/csi/server.js'
import { parseImageServiceConfig } from '../../lib/image/config.js'
import { parseKbsConfig } from '../../lib/kbs/config.js'
import { PostgresStoreSettings } from '../../plugins/kbs-store/postgres/settings.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are untyped YAML
type Doc = Record<string, any>

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url))

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : e.name.endsWith('.yaml') ? [join(dir, e.name)] : [],
  )
}

function loadDocs(): Doc[] {
  return yamlFiles(join(DEPLOY, 'kubernetes')).flatMap((f) =>
    (loadAll(readFileSync(f, 'utf8')) as Doc[]).filter(Boolean).map((d) => ({ ...d, __file: basename(f) })),
  )
}

/** The API group/version each kind we ship belongs to. */
const API_VERSIONS: Record<string, string> = {
  Namespace: 'v1',
  ServiceAccount: 'v1',
  ConfigMap: 'v1',
  Service: 'v1',
  PersistentVolumeClaim: 'v1',
  Pod: 'v1',
  Deployment: 'apps/v1',
  DaemonSet: 'apps/v1',
  ClusterRole: 'rbac.authorization.k8s.io/v1',
  ClusterRoleBinding: 'rbac.authorization.k8s.io/v1',
  CSIDriver: 'storage.k8s.io/v1',
  StorageClass: 'storage.k8s.io/v1',
}

const podSpecOf = (d: Doc): Doc | undefined =>
  d.kind === 'Pod'
    ? d.spec
    : d.kind === 'Deployment' || d.kind === 'DaemonSet'
      ? d.spec?.template?.spec
      : undefined

/** Structural problems of one set of manifests; empty when all is well. */
function problemsOf(docs: Doc[]): string[] {
  const out: string[] = []
  const at = (d: Doc): string => `${d.__file}: ${d.kind}/${d.metadata?.name}`
  for (const d of docs) {
    if (!d.kind || !(d.kind in API_VERSIONS)) out.push(`${d.__file}: unknown kind ${d.kind}`)
    else if (d.apiVersion !== API_VERSIONS[d.kind]) out.push(`${at(d)}: apiVersion ${d.apiVersion}`)
    if (typeof d.metadata?.name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(d.metadata.name))
      out.push(`${at(d)}: metadata.name`)
    if (d.kind === 'Deployment' || d.kind === 'DaemonSet') {
      const sel = d.spec?.selector?.matchLabels as Record<string, string> | undefined
      const labels = (d.spec?.template?.metadata?.labels ?? {}) as Record<string, string>
      if (!sel || Object.keys(sel).length === 0) out.push(`${at(d)}: no selector`)
      for (const [k, v] of Object.entries(sel ?? {}))
        if (labels[k] !== v) out.push(`${at(d)}: selector ${k}=${v} does not match the template labels`)
    }
    const spec = podSpecOf(d)
    if (spec) {
      const volumes = new Set(((spec.volumes ?? []) as Doc[]).map((v) => v.name as string))
      if (!Array.isArray(spec.containers) || spec.containers.length === 0) out.push(`${at(d)}: no containers`)
      for (const c of (spec.containers ?? []) as Doc[]) {
        if (!c.name || !c.image) out.push(`${at(d)}: a container without name or image`)
        for (const m of (c.volumeMounts ?? []) as Doc[])
          if (!volumes.has(m.name)) out.push(`${at(d)}: ${c.name} mounts undeclared volume ${m.name}`)
        const ports = new Set(((c.ports ?? []) as Doc[]).map((p) => p.name as string))
        for (const probe of [c.livenessProbe, c.readinessProbe].filter(Boolean) as Doc[]) {
          const port = probe.httpGet?.port
          if (typeof port === 'string' && !ports.has(port))
            out.push(`${at(d)}: ${c.name} probes unknown port ${port}`)
        }
      }
    }
    if (d.kind === 'Service') {
      const sel = (d.spec?.selector ?? {}) as Record<string, string>
      const targets = docs.filter((w) => {
        const labels = (w.kind === 'Pod' ? w.metadata?.labels : w.spec?.template?.metadata?.labels) ?? {}
        return (
          podSpecOf(w) &&
          Object.keys(sel).length > 0 &&
          Object.entries(sel).every(([k, v]) => labels[k] === v)
        )
      })
      if (targets.length === 0) out.push(`${at(d)}: selects no workload`)
      for (const p of (d.spec?.ports ?? []) as Doc[])
        if (typeof p.targetPort === 'string')
          for (const t of targets) {
            const named = (podSpecOf(t)!.containers as Doc[]).flatMap((c) => (c.ports ?? []) as Doc[])
            if (!named.some((np) => np.name === p.targetPort))
              out.push(`${at(d)}: targetPort ${p.targetPort} not in ${at(t)}`)
          }
    }
  }
  return out
}

const docs = loadDocs()
const find = (kind: string, name?: string): Doc => {
  const d = docs.find((x) => x.kind === kind && (name === undefined || x.metadata?.name === name))
  if (!d) throw new Error(`no ${kind} ${name ?? ''} in deploy/`)
  return d
}
const containerOf = (d: Doc, name: string): Doc => {
  const c = (podSpecOf(d)!.containers as Doc[]).find((x) => x.name === name)
  if (!c) throw new Error(`no container ${name} in ${d.metadata.name}`)
  return c
}
const flag = (c: Doc, name: string): string | undefined =>
  ((c.args ?? []) as string[]).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)

/** Where in its container a path from a config lives: the mount that holds it, and its volume. */
function volumeHolding(spec: Doc, c: Doc, path: string): Doc | undefined {
  const m = ((c.volumeMounts ?? []) as Doc[]).find((vm) => path.startsWith(`${vm.mountPath}/`))
  return m && ((spec.volumes ?? []) as Doc[]).find((v) => v.name === m.name)
}

/** Consistency of the CSI node plugin with the driver and its sidecars. */
function csiProblems(ds: Doc): string[] {
  const out: string[] = []
  const spec = podSpecOf(ds)!
  const driver = containerOf(ds, 'coffer-csi')
  const endpoint = flag(driver, 'endpoint') ?? ''
  const socket = socketPathOf(endpoint)
  const inPlugin = ((driver.volumeMounts ?? []) as Doc[]).find((m) => socket.startsWith(`${m.mountPath}/`))
  const pluginVol = ((spec.volumes ?? []) as Doc[]).find((v) => v.name === inPlugin?.name)
  const hostSocket = pluginVol?.hostPath
    ? posix.join(pluginVol.hostPath.path, posix.relative(inPlugin!.mountPath, socket))
    : ''
  if (!hostSocket.startsWith(`/var/lib/kubelet/plugins/${DRIVER_NAME}/`))
    out.push(`driver socket on the host is ${hostSocket}`)
  for (const name of ['node-driver-registrar', 'liveness-probe', 'csi-provisioner']) {
    const c = containerOf(ds, name)
    const addr = flag(c, 'csi-address') ?? ''
    const m = ((c.volumeMounts ?? []) as Doc[]).find((vm) => addr.startsWith(`${vm.mountPath}/`))
    if (
      m?.name !== inPlugin?.name ||
      posix.relative(m!.mountPath, addr) !== posix.relative(inPlugin!.mountPath, socket)
    )
      out.push(`${name}: --csi-address ${addr} is not the driver's socket`)
  }
  const reg = containerOf(ds, 'node-driver-registrar')
  if (flag(reg, 'kubelet-registration-path') !== hostSocket)
    out.push('registrar: --kubelet-registration-path is not the driver socket on the host')
  const regDir = ((reg.volumeMounts ?? []) as Doc[]).find((m) => m.mountPath === '/registration')
  const regVol = ((spec.volumes ?? []) as Doc[]).find((v) => v.name === regDir?.name)
  if (regVol?.hostPath?.path !== '/var/lib/kubelet/plugins_registry')
    out.push('registrar: /registration is not plugins_registry')
  const kubelet = ((driver.volumeMounts ?? []) as Doc[]).find((m) => m.mountPath === '/var/lib/kubelet')
  if (kubelet?.mountPropagation !== 'Bidirectional')
    out.push('driver: /var/lib/kubelet must be Bidirectional')
  if (driver.securityContext?.privileged !== true) out.push('driver: must be privileged (FUSE, mounts)')
  const probePort = containerOf(ds, 'liveness-probe')
    .args.find((a: string) => a.startsWith('--health-port='))
    ?.split('=')[1]
  if (
    String(
      ((driver.ports ?? []) as Doc[]).find((p) => p.name === driver.livenessProbe?.httpGet?.port)
        ?.containerPort,
    ) !== probePort
  )
    out.push("driver: livenessProbe does not reach the liveness-probe sidecar's --health-port")
  const stateDir = flag(driver, 'state-dir') ?? '/var/lib/coffer/csi'
  if (volumeHolding(spec, driver, `${stateDir}/x`)?.hostPath === undefined)
    out.push('driver: --state-dir is not on the host')
  return out
}

describe('deploy/ manifests', () => {
  it('parse, and every kind, apiVersion, name, selector, mount, probe port and service target is consistent', () => {
    expect(docs.length).toBeGreaterThanOrEqual(12)
    expect(problemsOf(docs)).toEqual([])
  })

  it('the structural checks catch a broken copy', () => {
    const broken = structuredClone(docs)
    const ds = broken.find((d) => d.kind === 'DaemonSet')!
    ds.spec.template.spec.volumes = ds.spec.template.spec.volumes.filter((v: Doc) => v.name !== 'plugin-dir')
    ds.spec.selector.matchLabels['app.kubernetes.io/name'] = 'other'
    broken.find((d) => d.kind === 'Service')!.spec.ports[0].targetPort = 'http'
    broken.push({
      kind: 'CSIDriver',
      apiVersion: 'storage.k8s.io/v1beta1',
      metadata: { name: 'x' },
      __file: 't',
    })
    const p = problemsOf(broken).join('\n')
    expect(p).toContain('mounts undeclared volume plugin-dir')
    expect(p).toContain('does not match the template labels')
    expect(p).toContain('targetPort http')
    expect(p).toContain('apiVersion storage.k8s.io/v1beta1')
  })

  it("CSI: the registrar, liveness probe and provisioner use the driver's socket; kubelet paths are right", () => {
    const ds = find('DaemonSet', 'coffer-csi-node')
    expect(csiProblems(ds)).toEqual([])
    const broken = structuredClone(ds)
    containerOf(broken, 'node-driver-registrar').args = [
      '--csi-address=/csi/other.sock',
      '--kubelet-registration-path=/x',
    ]
    containerOf(broken, 'coffer-csi').volumeMounts.find(
      (m: Doc) => m.name === 'kubelet-dir',
    ).mountPropagation = 'None'
    expect(csiProblems(broken).join('\n')).toMatch(
      /registrar: --csi-address[\s\S]*registration-path[\s\S]*Bidirectional/,
    )
  })

  it('CSIDriver, StorageClass and the example pod name the driver; the class parameters pass its checks', () => {
    const driver = find('CSIDriver')
    expect(driver.metadata.name).toBe(DRIVER_NAME)
    expect(driver.spec).toMatchObject({ attachRequired: false, podInfoOnMount: true })
    expect([...driver.spec.volumeLifecycleModes].sort()).toEqual(['Ephemeral', 'Persistent'])
    const sc = find('StorageClass')
    expect(sc.provisioner).toBe(DRIVER_NAME)
    expect(sc.volumeBindingMode).toBe('WaitForFirstConsumer')
    expect(keyOf(sc.parameters, undefined)).toMatchObject({ kind: 'kbs', uri: sc.parameters.keyUri })
    const pvc = find('PersistentVolumeClaim')
    expect(pvc.spec.storageClassName).toBe(sc.metadata.name)
    const pod = find('Pod')
    const vols = pod.spec.volumes as Doc[]
    expect(vols.find((v) => v.csi)?.csi.driver).toBe(DRIVER_NAME)
    expect(vols.find((v) => v.persistentVolumeClaim)?.persistentVolumeClaim.claimName).toBe(pvc.metadata.name)
  })

  it("KBS: the ConfigMap's kbs.toml passes the KBS's parser; every file it names is a mounted Secret or ConfigMap", () => {
    const cm = find('ConfigMap', 'coffer-kbs-config')
    const deploy = find('Deployment', 'coffer-kbs')
    expect(deploy.spec.replicas).toBeGreaterThan(1)
    const spec = podSpecOf(deploy)!
    const kbs = containerOf(deploy, 'kbs')
    const configPath = kbs.args[kbs.args.indexOf('--config') + 1] as string
    expect(volumeHolding(spec, kbs, configPath)?.configMap?.name).toBe(cm.metadata.name)
    expect(Object.keys(cm.data)).toContain(basename(configPath))
    const config = parseKbsConfig(parseToml(cm.data[basename(configPath)]), dirname(configPath))
    expect(config.store.type).toBe('postgres')
    const pg = PostgresStoreSettings.parse(config.store.settings)
    const files = [
      config.http.tls_cert,
      config.http.tls_key,
      config.attestation.token_key,
      ...config.admin.public_keys,
      pg.passwordFile,
    ]
    for (const f of files) {
      expect(f, 'a file the KBS config names').toBeTruthy()
      const v = volumeHolding(spec, kbs, f!)
      expect(v?.secret?.secretName, `${f} should come from a Secret`).toBeTruthy()
    }
    expect(config.attestation.allow_sample).toBe(false)
  })

  it('Dockerfile: Debian with Node 20, libfuse2 and fuse, the built dist', () => {
    const df = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8')
    expect(df).toMatch(/^FROM node:20-bookworm/m)
    expect(df).toMatch(/apt-get install[^\n]*libfuse2 fuse/)
    expect(df).toMatch(/COPY --from=build \/src\/dist dist/)
    expect(df).toContain('npm run build')
  })
})

describe('deploy/kubernetes/image-service/config.example.toml', () => {
  it('passes the image service’s own parser, with a KBS-held policy', () => {
    const path = join(DEPLOY, 'kubernetes', 'image-service', 'config.example.toml')
    const config = parseImageServiceConfig(parseToml(readFileSync(path, 'utf8')), dirname(path))
    expect(config.kbs?.url).toMatch(/^https:\/\//)
    expect(config.image.policy).toMatch(/^kbs:\/\/\//)
    expect(config.image.insecure_accept_anything).toBe(false)
  })
})
