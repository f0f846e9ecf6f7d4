/**
 * Seeded choices for chaos tests: a run prints its seed, and the same seed makes the same choices
 * again (its timing aside).
 */

/** mulberry32: a small seeded generator of numbers in [0, 1), good enough to pick faults. */
export const seededRandom = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** One entry of `menu`, each as likely as its weight; the menu must not be empty. */
export const pickWeighted = <A>(random: () => number, menu: ReadonlyArray<readonly [number, A]>): A => {
  const first = menu[0]
  if (first === undefined) throw new Error("pickWeighted: the menu is empty")
  let r = random() * menu.reduce((n, [w]) => n + w, 0)
  for (const [w, choice] of menu) {
    r -= w
    if (r < 0) return choice
  }
  return first[1]
}
