/**
 * The `omitFields` and `setFields` faults' change to a successful answer's JSON (a vault's, or an
 * identity endpoint's token answer): a copy without some fields, or with some set.
 */
import { isRecord } from "./http.js"

/**
 * The objects a dotted path's parent parts lead to: a part names an object's field, an array's item
 * by its index (`value.0.x5t`: the first list item's x5t), or `*` every item of an array.
 */
const parentsOf = (root: unknown, parts: ReadonlyArray<string>): Array<Record<string, unknown>> => {
  let at: Array<unknown> = [root]
  for (const part of parts)
    at = at.flatMap((node) =>
      Array.isArray(node)
        ? part === "*"
          ? node
          : /^\d+$/.test(part) && Number(part) < node.length
            ? [node[Number(part)]]
            : []
        : isRecord(node)
          ? [node[part]]
          : [],
    )
  return at.filter(isRecord)
}

/** The body with the fields at `omit` removed and those of `set` given these values (see FaultAction). */
export const withFields = (
  body: unknown,
  omit: ReadonlyArray<string>,
  set: Readonly<Record<string, unknown>>,
): unknown => {
  const copy = structuredClone(body)
  for (const [path, value] of [
    ...omit.map((p) => [p, undefined] as const),
    ...Object.entries(set).map(([p, v]) => [p, v] as const),
  ]) {
    const parts = path.split(".")
    const last = parts.at(-1)
    if (last === undefined) continue
    for (const parent of parentsOf(copy, parts.slice(0, -1)))
      if (value === undefined) delete parent[last]
      else parent[last] = structuredClone(value)
  }
  return copy
}
