// Minimal typing for js-yaml 4 (no @types package installed); only what registries-d.ts uses.
declare module 'js-yaml' {
  export const CORE_SCHEMA: unknown
  export function load(
    input: string,
    options?: { schema?: unknown; filename?: string; json?: boolean },
  ): unknown
}
