/**
 * The resource policy: which verified guests get which resources. Trustee uses Rego; coffer uses
 * CEL expressions (cel-spec, evaluated by @marcbachmann/cel-js) inside a small JSON document,
 * because CEL is non-Turing-complete, cannot loop or do I/O, and is what Kubernetes admission
 * policies already use. Semantics are order-independent and fail closed:
 *
 *   - a rule applies to a request when one of its `resources` patterns matches the path;
 *   - any applicable `deny` rule whose `when` is true, or fails to evaluate, denies;
 *   - otherwise any applicable `allow` rule whose `when` is true allows;
 *   - otherwise (including no policy at all) the request is denied.
 *
 * Variables available to `when`:
 *   tee       string   the TEE that attested ("tpm", "snp", "sample"…)
 *   status    string   EAR status of cpu0: "affirming" | "warning" | "contraindicated" | "none"
 *   trust     map      the AR4SI trustworthiness vector (e.g. trust.executables == 3)
 *   evidence  map      the verifier's claims for that TEE (e.g. evidence.pcrs[11])
 *   init_data map      claims from the guest's init-data ({} when none)
 *   token     map      the whole token
 *   resource  map      {repository, type, tag, path} of the requested resource
 */
import { parse } from '@marcbachmann/cel-js'
import { z } from 'zod'
import { CofferError } from '../util/errors.js'
import type { EarClaims } from './ear-token.js'

export const POLICY_VERSION = 'coffer.dev/kbs-resource-policy/v1'
const SEGMENT_PATTERN = /^(\*|[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$/

const RuleSchema = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  effect: z.enum(['allow', 'deny']),
  resources: z
    .array(
      z
        .string()
        .max(400)
        .refine(
          (p) =>
            p === '*' || (p.split('/').length === 3 && p.split('/').every((s) => SEGMENT_PATTERN.test(s))),
          {
            message: 'a resource pattern is "*" or "<repository>/<type>/<tag>" where any segment may be "*"',
          },
        ),
    )
    .min(1)
    .max(256),
  when: z.string().min(1).max(4096).optional(),
})

export const ResourcePolicySchema = z.strictObject({
  version: z.literal(POLICY_VERSION),
  rules: z.array(RuleSchema).max(1000),
})
export type ResourcePolicyDocument = z.infer<typeof ResourcePolicySchema>

export interface ResourceRef {
  repository: string
  type: string
  tag: string
}

export interface Decision {
  allow: boolean
  /** Why, for logs and the deny detail: the deciding rule's name or index. Never claim values. */
  reason: string
}

type Compiled = {
  rule: z.infer<typeof RuleSchema>
  label: string
  when?: (vars: Record<string, unknown>) => unknown
}

export class ResourcePolicy {
  private constructor(
    readonly document: ResourcePolicyDocument,
    private readonly rules: Compiled[],
  ) {}

  /** Parses and compiles a policy; every expression must parse, or ERR_KBS_POLICY_INVALID. */
  static parse(text: string): ResourcePolicy {
    if (/^\s*package\s+[A-Za-z_]/.test(text))
      throw new CofferError(
        'ERR_KBS_POLICY_INVALID',
        'this looks like a Rego policy; coffer resource policies are JSON documents with CEL rules (see docs/kbs.md)',
      )
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new CofferError('ERR_KBS_POLICY_INVALID', 'the resource policy is not valid JSON')
    }
    const r = ResourcePolicySchema.safeParse(json)
    if (!r.success) {
      const issue = r.error.issues[0]!
      throw new CofferError(
        'ERR_KBS_POLICY_INVALID',
        `invalid resource policy at ${issue.path.join('.') || '(root)'}: ${issue.message}`,
      )
    }
    const rules = r.data.rules.map((rule, i): Compiled => {
      const label = rule.name ?? `rule ${i}`
      if (rule.when === undefined) return { rule, label }
      try {
        return { rule, label, when: parse(rule.when) as (vars: Record<string, unknown>) => unknown }
      } catch (err) {
        throw new CofferError(
          'ERR_KBS_POLICY_INVALID',
          `${label}: invalid CEL expression: ${(err as Error).message.split('\n')[0]}`,
        )
      }
    })
    return new ResourcePolicy(r.data, rules)
  }

  evaluate(claims: EarClaims, resource: ResourceRef): Decision {
    const path = `${resource.repository}/${resource.type}/${resource.tag}`
    const vars = policyVariables(claims, { ...resource, path })
    const applicable = this.rules.filter((c) => c.rule.resources.some((p) => matches(p, resource)))
    for (const c of applicable.filter((x) => x.rule.effect === 'deny')) {
      const v = evaluateWhen(c, vars)
      if (v !== false)
        return {
          allow: false,
          reason: `denied by ${c.label}${v === 'error' ? ' (its condition failed to evaluate)' : ''}`,
        }
    }
    for (const c of applicable.filter((x) => x.rule.effect === 'allow'))
      if (evaluateWhen(c, vars) === true) return { allow: true, reason: `allowed by ${c.label}` }
    return {
      allow: false,
      reason: applicable.length ? 'no allow rule matched' : 'no rule covers this resource',
    }
  }
}

function evaluateWhen(c: Compiled, vars: Record<string, unknown>): boolean | 'error' {
  if (!c.when) return true
  try {
    const v = c.when(vars)
    return v === true ? true : v === false ? false : 'error'
  } catch {
    return 'error'
  }
}

function matches(pattern: string, r: ResourceRef): boolean {
  if (pattern === '*') return true
  const [repo, type, tag] = pattern.split('/')
  const seg = (p: string | undefined, v: string): boolean => p === '*' || p === v
  return seg(repo, r.repository) && seg(type, r.type) && seg(tag, r.tag)
}

function policyVariables(claims: EarClaims, resource: Record<string, string>): Record<string, unknown> {
  const cpu0 = claims.submods.cpu0
  const annotated = cpu0['ear.veraison.annotated-evidence'] ?? {}
  const tee =
    Object.keys(annotated).find(
      (k) => !['report_data', 'runtime_data_claims', 'init_data', 'init_data_claims'].includes(k),
    ) ?? 'none'
  return {
    tee,
    status: cpu0['ear.status'],
    trust: cpu0['ear.trustworthiness-vector'] ?? {},
    evidence: (annotated as Record<string, unknown>)[tee] ?? {},
    init_data: (annotated as Record<string, unknown>).init_data_claims ?? {},
    token: claims,
    resource,
  }
}
