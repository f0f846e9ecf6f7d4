/**
 * For `--check`: a source file that does not exist, as a warning (and its fix, which the running
 * agent's `source broken` line gives too: `explainMissing`). The agent runs with it (a
 * certificate not issued yet is picked up once its file is written), but a mistyped path looks the
 * same to the running agent: `source broken … does not exist` on every retry, and nothing deployed.
 * The warning names the path and, when its directory is missing too (a mistyped path is likelier
 * then), the first directory on the way that is missing and the one above it that exists.
 *
 * Stat calls only, and one walk per directory: 10,000 deployments sharing one missing directory
 * walk it once.
 */
import { lstatSync, readlinkSync, statSync } from "node:fs"
import { dirname } from "node:path"
import { type ConfigProblem, shownPath } from "@kvdeploy/core"

/** Where a missing path stops existing: the first missing entry on its way, and the directory above it that exists. */
export interface MissingFrom {
  /** The first entry on the way that does not exist (the path itself when its directory exists). */
  readonly missing: string
  /** The directory holding `missing`, which exists. */
  readonly existing: string
}

/** Does `path` exist (following links)? An error other than ENOENT (a directory this user may not search) counts as existing: nothing is said of what cannot be seen. */
const exists = (path: string): boolean => {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined
  } catch {
    return true
  }
}

/** A symbolic link's target, when `path` is one (a link to nothing is missing to stat, there to lstat). */
const linkTarget = (path: string): string | undefined => {
  try {
    return lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() === true
      ? readlinkSync(path)
      : undefined
  } catch {
    return undefined
  }
}

/**
 * What a missing path is, and what to do about it: said by `--check` (`missingSources`) and by the
 * running agent's `source broken` line alike. `rest` follows the path (`PATH does not exist, …`).
 * `walked` keeps the directories walked (one walk per directory for 10,000 deployments).
 */
export const explainMissing = (
  path: string,
  walked: Map<string, MissingFrom | undefined> = new Map(),
): { readonly rest: string; readonly fix: string } => {
  const missingFromDir = (dir: string): MissingFrom | undefined => {
    if (walked.has(dir)) return walked.get(dir)
    let found: MissingFrom | undefined
    if (!exists(dir)) {
      const parent = dirname(dir)
      found = parent === dir ? undefined : (missingFromDir(parent) ?? { missing: dir, existing: parent })
    }
    walked.set(dir, found)
    return found
  }
  const dir = dirname(path)
  const from = missingFromDir(dir) ?? { missing: path, existing: dir }
  const link = linkTarget(from.missing)
  const rest =
    from.missing === path
      ? link === undefined
        ? "does not exist"
        : `is a symbolic link to ${shownPath(link)}, which does not exist`
      : `does not exist, nor does the directory ${shownPath(from.missing)}${from.missing === dir ? "" : " on its way"}${link === undefined ? "" : `, a symbolic link to ${shownPath(link)}, which does not exist`} (${shownPath(from.existing)} exists)`
  const fix =
    from.missing === path
      ? `${link === undefined ? "if the path is mistyped, correct it" : `if the path or the link is wrong, correct the path or point the link at the file (ln -sfn FILE ${shownPath(path)})`} (ls ${shownPath(dir)} shows what is there); if the file is not written yet (a certificate not issued yet), nothing to do: the agent watches ${shownPath(dir)} and deploys it once the file appears`
      : `a missing directory is likelier a mistyped path: compare it with what ${shownPath(from.existing)} holds (ls ${shownPath(from.existing)}) and correct it; if it is not made yet (a certificate not issued yet), nothing to do: the agent deploys it once the file appears (the watch sees the directory made, and its retries and every interval pass look again)`
  return { rest, fix }
}

/**
 * The warnings of the source paths that do not exist, one per path. `warn` is called with each path
 * a stat answered ENOENT for; `warnings` gives them, the first `limit` of them listed and the rest counted.
 */
export const missingSources = (limit: number) => {
  /** directory -> the first missing directory on its way and the one above it (undefined: the directory exists). */
  const walked = new Map<string, MissingFrom | undefined>()
  const listed: Array<ConfigProblem> = []
  let unlisted = 0
  return {
    warn: (field: string, name: string | undefined, path: string): void => {
      if (listed.length >= limit) {
        unlisted++
        return
      }
      const { rest, fix } = explainMissing(path, walked)
      const deployment = name === undefined ? "the deployment" : `deployment "${name}"`
      listed.push({
        field,
        message: `${shownPath(path)} ${rest}: the running agent reports ${deployment} as source broken (kvdeploy_agent_source_broken 1) and deploys nothing for it until the file exists`,
        fix,
      })
    },
    warnings: (): Array<ConfigProblem> =>
      unlisted === 0
        ? listed
        : [
            ...listed,
            {
              field: "deployments",
              message: `${unlisted} more source paths do not exist, not listed`,
              fix: "look at the ones listed: a certificate not issued yet is fine, a mistyped path is not (the running agent's source broken lines name each path)",
            },
          ],
  }
}
