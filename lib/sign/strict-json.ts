/**
 * JSON.parse keeps the last of duplicate keys; containers/image (`paranoidUnmarshalJSONObject`)
 * refuses them ("Duplicate key"), and so must we: otherwise `{"default":[reject],"default":[accept]}`
 * would mean "accept" to coffer and "invalid" to skopeo. This scan runs on text JSON.parse already
 * accepted, so it only tracks strings, escapes and nesting.
 */

/** The first key that appears twice in one object, or undefined. `text` must be valid JSON. */
export function findDuplicateKey(text: string): string | undefined {
  // One entry per open container: the keys seen so far (objects) or null (arrays).
  const stack: (Set<string> | null)[] = []
  let expectKey = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '"') {
      let j = i + 1
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1
      const top = stack.at(-1)
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string
        if (top.has(key)) return key
        top.add(key)
        expectKey = false
      }
      i = j
    } else if (c === '{') {
      stack.push(new Set())
      expectKey = true
    } else if (c === '[') {
      stack.push(null)
    } else if (c === '}' || c === ']') {
      stack.pop()
    } else if (c === ',') {
      expectKey = stack.at(-1) instanceof Set
    }
  }
  return undefined
}
