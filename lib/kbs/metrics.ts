/**
 * Prometheus metrics of one KBS. Labels are bounded sets (route names, TEE names, outcomes):
 * never paths, session ids or anything a client chooses.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface KbsMetrics {
  readonly registry: Registry
  readonly requests: Counter<'route' | 'status'>
  readonly duration: Histogram<'route'>
  readonly attestations: Counter<'tee' | 'result'>
  readonly resources: Counter<'result'>
}

export function createKbsMetrics(): KbsMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'coffer_kbs_' })
  return {
    registry,
    requests: new Counter({
      name: 'coffer_kbs_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['route', 'status'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'coffer_kbs_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    attestations: new Counter({
      name: 'coffer_kbs_attestations_total',
      help: 'Attestations by TEE and result',
      labelNames: ['tee', 'result'],
      registers: [registry],
    }),
    resources: new Counter({
      name: 'coffer_kbs_resource_requests_total',
      help: 'Resource requests by result',
      labelNames: ['result'],
      registers: [registry],
    }),
  }
}
