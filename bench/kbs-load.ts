/**
 * KBS throughput: resource GETs/s and full sample-attestation handshakes/s at a given concurrency
 * against `coffer kbs serve` running in its own process on loopback, with p50/p99 latency and the
 * server's peak RSS. The load generator runs here (the other core), with keep-alive connections
 * like a fleet of guests that each hold a token.
 *
 * There is no peer to compare with on this machine: trustee's KBS is not packaged for Debian and
 * only the npm and Debian registries are reachable, so the table states the goal instead
 * (issue 6: ≥ 1,000 GETs/s with p99 < 20 ms, ≥ 200 handshakes/s, on 2 cores).
 *
 * Run alone: `node dist/bench/kbs-load.js` (after `npm run build`).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runtimeDataDigest } from '../lib/attest/report-data.js'
import { generateKeyPairSync } from 'node:crypto'
import { signAdminToken } from '../lib/kbs/admin-auth.js'
import { startKbsServeProcess } from '../cli/demo/kbs-serve-process.js'
import { treePeakRssKiB } from './measure.js'

export interface KbsBenchResult {
  concurrency: number
  seconds: number
  /** Closed loop: `concurrency` guests back to back, the most the server gives. */
  gets: { perSecond: number; p50Ms: number; p99Ms: number; count: number }
  /** Open loop at the goal's rate: the latency guests see when the KBS serves 1,000 GETs/s. */
  getsAtGoalRate: { perSecond: number; p50Ms: number; p99Ms: number; count: number }
  handshakes: { perSecond: number; p50Ms: number; p99Ms: number; count: number }
  serverPeakRssMiB: number
}

export const KBS_GOALS = { getsPerSecond: 1000, getP99Ms: 20, handshakesPerSecond: 200 }

const POLICY = JSON.stringify({
  version: 'coffer.dev/kbs-resource-policy/v1',
  rules: [{ effect: 'allow', resources: ['bench/key/*'], when: 'tee == "sample"' }],
})

export async function benchKbs(
  cofferBin: string,
  o: { concurrency?: number; seconds?: number } = {},
): Promise<KbsBenchResult> {
  const concurrency = o.concurrency ?? 32
  const seconds = o.seconds ?? 5
  const dir = await mkdtemp(join(tmpdir(), 'coffer-kbs-bench-'))
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  await writeFile(join(dir, 'admin.pub'), publicKey.export({ type: 'spki', format: 'pem' }))
  await writeFile(join(dir, 'policy.json'), POLICY)
  const server = await startKbsServeProcess({
    cofferBin,
    adminPublicKey: join(dir, 'admin.pub'),
    policyFile: join(dir, 'policy.json'),
    quiet: true,
  }).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true })
    throw err
  })
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  try {
    const url = new URL(server.url)
    const http = (method: string, path: string, headers: Record<string, string>, body?: string | Buffer) =>
      send(agent, url, method, path, headers, body)
    const admin = { authorization: `Bearer ${await signAdminToken(privateKey)}` }
    const put = await http(
      'POST',
      '/kbs/v0/resource/bench/key/one',
      { ...admin, 'content-type': 'application/octet-stream' },
      randomBytes(32),
    )
    if (put.status !== 200) throw new Error(`put-resource failed: ${put.status}`)

    const handshake = async (): Promise<string> => {
      const a = await http(
        'POST',
        '/kbs/v0/auth',
        { 'content-type': 'application/json' },
        JSON.stringify({ version: '0.4.0', tee: 'sample', 'extra-params': '' }),
      )
      const nonce = (JSON.parse(a.body) as { nonce: string }).nonce
      const cookie = String(a.headers['set-cookie']).split(';')[0]!
      const { publicKey: pk } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      const j = pk.export({ format: 'jwk' })
      const teePubKey = { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: j.x!, y: j.y! }
      const digest = runtimeDataDigest({ nonce, 'tee-pubkey': teePubKey, 'additional-evidence': '' })
      const body = {
        'init-data': null,
        'runtime-data': { nonce, 'tee-pubkey': teePubKey },
        'tee-evidence': {
          primary_evidence: { svn: '1', report_data: Buffer.from(digest).toString('base64') },
          additional_evidence: '',
        },
      }
      const t = await http(
        'POST',
        '/kbs/v0/attest',
        { 'content-type': 'application/json', cookie },
        JSON.stringify(body),
      )
      if (t.status !== 200) throw new Error(`attest failed: ${t.status} ${t.body}`)
      return (JSON.parse(t.body) as { token: string }).token
    }

    // Warm-up, and one token per virtual guest for the GET phase.
    const tokens = await Promise.all(Array.from({ length: concurrency }, handshake))
    const gets = await load(concurrency, seconds, async (i) => {
      const r = await http('GET', '/kbs/v0/resource/bench/key/one', { authorization: `Bearer ${tokens[i]!}` })
      if (r.status !== 200) throw new Error(`GET failed: ${r.status}`)
    })
    const getsAtGoalRate = await paced(KBS_GOALS.getsPerSecond, seconds, async (i) => {
      const r = await http('GET', '/kbs/v0/resource/bench/key/one', {
        authorization: `Bearer ${tokens[i % concurrency]!}`,
      })
      if (r.status !== 200) throw new Error(`GET failed: ${r.status}`)
    })
    const handshakes = await load(concurrency, seconds, async () => {
      await handshake()
    })
    const serverPeakRssMiB = treePeakRssKiB(server.child.pid!) / 1024
    return { concurrency, seconds, gets, getsAtGoalRate, handshakes, serverPeakRssMiB }
  } finally {
    agent.destroy()
    await server.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

/** Runs `op` from `concurrency` workers for `seconds`; rate and latency percentiles. */
async function load(
  concurrency: number,
  seconds: number,
  op: (worker: number) => Promise<void>,
): Promise<KbsBenchResult['gets']> {
  const latencies: number[] = []
  const end = performance.now() + seconds * 1000
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async (_, i) => {
      while (performance.now() < end) {
        const t = performance.now()
        await op(i)
        latencies.push(performance.now() - t)
      }
    }),
  )
  return summarize(latencies, (performance.now() - started) / 1000)
}

/**
 * Starts `op` at a fixed `rate` per second for `seconds`, whether or not earlier ones finished (an
 * open loop, as independent guests arrive), and times each from when it was due, so a stalled
 * server cannot hide its queue by slowing the sender (coordinated omission).
 */
async function paced(
  rate: number,
  seconds: number,
  op: (n: number) => Promise<void>,
): Promise<KbsBenchResult['gets']> {
  const latencies: number[] = []
  const started = performance.now()
  const total = Math.round(rate * seconds)
  const inFlight: Promise<void>[] = []
  for (let n = 0; n < total; n++) {
    const due = started + (n * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    inFlight.push(op(n).then(() => void latencies.push(performance.now() - due)))
  }
  await Promise.all(inFlight)
  const elapsed = (performance.now() - started) / 1000
  return summarize(latencies, elapsed)
}

function summarize(latencies: number[], elapsed: number): KbsBenchResult['gets'] {
  latencies.sort((a, b) => a - b)
  const pct = (p: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0
  return { perSecond: latencies.length / elapsed, p50Ms: pct(50), p99Ms: pct(99), count: latencies.length }
}

function send(
  agent: Agent,
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path,
        headers: { ...headers, ...(body ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
        agent,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

export function kbsTable(r: KbsBenchResult): string {
  const ok = (b: boolean): string => (b ? '✅' : '❌')
  return [
    `| KBS (concurrency ${r.concurrency}, ${r.seconds} s each) | rate | p50 | p99 | goal | server peak RSS |`,
    '| --- | ---: | ---: | ---: | :---: | ---: |',
    `| resource GET (JWE to the session key) | ${r.gets.perSecond.toFixed(0)}/s | ${r.gets.p50Ms.toFixed(1)} ms | ${r.gets.p99Ms.toFixed(1)} ms | ≥ ${KBS_GOALS.getsPerSecond}/s ${ok(r.gets.perSecond >= KBS_GOALS.getsPerSecond)} | ${r.serverPeakRssMiB.toFixed(0)} MiB |`,
    `| resource GET at a steady ${KBS_GOALS.getsPerSecond}/s (open loop) | ${r.getsAtGoalRate.perSecond.toFixed(0)}/s | ${r.getsAtGoalRate.p50Ms.toFixed(1)} ms | ${r.getsAtGoalRate.p99Ms.toFixed(1)} ms | p99 < ${KBS_GOALS.getP99Ms} ms ${ok(r.getsAtGoalRate.p99Ms < KBS_GOALS.getP99Ms)} | |`,
    `| sample handshake (auth + attest) | ${r.handshakes.perSecond.toFixed(0)}/s | ${r.handshakes.p50Ms.toFixed(1)} ms | ${r.handshakes.p99Ms.toFixed(1)} ms | ≥ ${KBS_GOALS.handshakesPerSecond}/s ${ok(r.handshakes.perSecond >= KBS_GOALS.handshakesPerSecond)} | |`,
    '',
    'No peer row: trustee’s KBS is not packaged for Debian and cannot be fetched here.',
  ].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const bin = fileURLToPath(new URL('../cli/main.js', import.meta.url))
  benchKbs(bin)
    .then((r) => console.log(kbsTable(r)))
    .catch((err: unknown) => {
      console.error(err)
      process.exitCode = 1
    })
}
