/**
 * Step 6 (and the rollback's verify): read the latest version back and judge
 * it against what was imported. Key Vault's latest is by definition its most
 * recently created version, and it keeps creation times in whole seconds, so:
 * - latest is ours (or, after a reconciliation that found several versions
 *   that can be ours, any of them) -> judged against what was imported;
 * - latest is a version known to predate ours (the snapshot), or was created
 *   in an earlier second than ours -> a stale read or a lost write: read
 *   again with the retry schedule, then `Stale`;
 * - any other latest created in our second or later -> another writer's
 *   newer version (`Superseded`). The version list's order is never used.
 */
import * as Effect from "effect/Effect"
import { Vault, type VaultVersion } from "./ports/Vault.js"
import { hasTags } from "./tags.js"
import { type DeployTrail, retryWhile } from "./trail.js"

export interface Expected {
  /** The imported version (after a reconciliation, the latest-created candidate). */
  readonly version: VaultVersion
  /**
   * Other versions a reconciliation found that can equally be the import (same
   * x5t and tags, created in the snapshot's second or later): a latest among
   * them is judged as ours.
   */
  readonly alsoOurs?: ReadonlyArray<VaultVersion>
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

/** The vault answered a version older than ours, or no version at all: read again. */
interface StaleAnswer {
  readonly _tag: "StaleAnswer"
  readonly latest: VaultVersion | undefined
}

const judgeOurs = (latest: VaultVersion, expected: Expected): Verdict => {
  const differences: Array<string> = []
  if (latest.x5t !== expected.x5t) differences.push(`x5t is ${latest.x5t}, expected ${expected.x5t}`)
  if (latest.serialHex !== expected.serialHex)
    differences.push(`serial is ${latest.serialHex}, expected ${expected.serialHex}`)
  if (!latest.enabled) differences.push("the version is disabled")
  if (!hasTags(latest.tags, expected.tags)) differences.push("kvdeploy's tags are missing or changed")
  return differences.length === 0 ? { _tag: "Verified", latest } : { _tag: "Mismatch", latest, differences }
}

export const verifyLatest = (
  trail: DeployTrail,
  name: string,
  expected: Expected,
): Effect.Effect<Verdict, never, Vault> =>
  Effect.flatMap(Effect.service(Vault), (vault) => {
    const ours = expected.version
    const ourIds = new Set((expected.alsoOurs ?? []).map((v) => v.versionId))
    const once = Effect.flatMap(
      trail
        .read("getLatest", vault.getLatest(name))
        .pipe(
          Effect.catchTag("VaultNotFound", () =>
            Effect.fail<StaleAnswer>({ _tag: "StaleAnswer", latest: undefined }),
          ),
        ),
      (latest): Effect.Effect<Verdict, StaleAnswer | { readonly _tag: string; readonly message: string }> => {
        if (latest.versionId === ours.versionId || ourIds.has(latest.versionId))
          return Effect.succeed(judgeOurs(latest, expected))
        const stale: StaleAnswer = { _tag: "StaleAnswer", latest }
        if (expected.olderVersionIds.includes(latest.versionId)) return Effect.fail(stale)
        // Latest is the most recently created version: one created in our second or later is newer.
        if (latest.createdAt.getTime() >= ours.createdAt.getTime())
          return Effect.succeed({ _tag: "Superseded", latest })
        return Effect.fail(stale)
      },
    )
    return retryWhile(once, (e) => e._tag === "StaleAnswer").pipe(
      Effect.catch((e) =>
        Effect.succeed<Verdict>(
          e._tag !== "StaleAnswer"
            ? { _tag: "Unreadable", detail: "message" in e ? e.message : e._tag }
            : "latest" in e && e.latest !== undefined
              ? { _tag: "Stale", latest: e.latest }
              : { _tag: "Unreadable", detail: "the vault says the certificate does not exist" },
        ),
      ),
    )
  })
