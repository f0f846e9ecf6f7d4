/** Operator durations: `30d`, `12h`, `90m`, `45s`, `2w`, `500ms`. */
const units: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
}

export const parseDuration = (text: string): number | undefined => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(text.trim())
  if (m === null) return undefined
  const unit = units[m[2] ?? ""]
  return unit === undefined ? undefined : Number(m[1]) * unit
}
