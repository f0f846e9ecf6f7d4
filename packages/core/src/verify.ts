/**
 * Step 6 (and the rollback's verify): read the latest version back and judge
 * it against what was imported.
 */
import * as Effect from "effect/Effect"
import { Vault, type VaultVersion } from "./ports/Vault.js"
import { hasTags } from "./tags.js"
import type { DeployTrail } from "./trail.js"

export interface Expected {
  readonly version: VaultVersion
  readonly x5t: string
  readonly serialHex: string
  readonly tags: Readonly<Record<string, string>>
  /** Versions known to predate ours (the snapshot, or the failed version before a rollback). */
  readonly olderVersionIds: ReadonlyArray<string>
}

export type Verdict =
  | { readonly _tag: "Verified"; readonly latest: VaultVersion }
  | { readonly _tag: "Unreadable"; readonly detail: string }
  | { readonly _tag: "Stale"; readonly latest: VaultVersion }
  | { readonly _tag: "Superseded"; readonly latest: VaultVersion }
  | { readonly _tag: "Mismatch"; readonly latest: VaultVersion; readonly differences: ReadonlyArray<string> }

export const verifyLatest = (
  trail: DeployTrail,
  name: string,
  expected: Expected,
): Effect.Effect<Verdict, never, Vault> =>
  Effect.flatMap(Effect.service(Vault), (vault) =>
    trail.read("getLatest", vault.getLatest(name)).pipe(
      Effect.map((latest): Verdict => {
        if (latest.versionId !== expected.version.versionId) {
          const older =
            expected.olderVersionIds.includes(latest.versionId) ||
            latest.createdAt.getTime() < expected.version.createdAt.getTime()
          return older ? { _tag: "Stale", latest } : { _tag: "Superseded", latest }
        }
        const differences: Array<string> = []
        if (latest.x5t !== expected.x5t) differences.push(`x5t is ${latest.x5t}, expected ${expected.x5t}`)
        if (latest.serialHex !== expected.serialHex)
          differences.push(`serial is ${latest.serialHex}, expected ${expected.serialHex}`)
        if (!latest.enabled) differences.push("the version is disabled")
        if (!hasTags(latest.tags, expected.tags)) differences.push("kvdeploy's tags are missing or changed")
        return differences.length === 0
          ? { _tag: "Verified", latest }
          : { _tag: "Mismatch", latest, differences }
      }),
      Effect.catch((e) => Effect.succeed<Verdict>({ _tag: "Unreadable", detail: e.message })),
    ),
  )
