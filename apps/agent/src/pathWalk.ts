/**
 * What the agent's path walks share (pathTrust.ts's trust walk, stateDirParents.ts's parent walk,
 * sourceLinks.ts's watch walk, main.ts's state directory check): each resolves a path by hand, one
 * `lstat` per component, as the kernel does; each keeps its own loop and rules.
 */

/** The sticky bit (S_ISVTX; not in Node's fs.constants). */
export const STICKY = 0o1000

/** Symbolic links followed at most, as the kernel does (MAXSYMLINKS). */
export const MAX_LINKS = 40

/** A path's components but "" and ".", last first (a stack to pop from, as the kernel walks it). */
export const componentsLastFirst = (path: string): Array<string> =>
  path
    .split("/")
    .filter((c) => c !== "" && c !== ".")
    .reverse()
