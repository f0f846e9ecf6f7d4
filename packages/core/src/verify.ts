/**
 * Step 6 (and the rollback's verify): read the latest version back and judge
 * it against what was imported. A read that shows an older version (a lagging
 * replica) is read again with backoff; a different version counts as
 * another writer's newer one only on evidence: a later creation time, or,
 * when the times are equal (Key Vault keeps seconds), the version list's order.
 */
import * as Effect from "effect/Effect"
import { Vault, type VaultVersion } from "./ports/Vault.js"
import { hasTags } from "./tags.js"
import { type DeployTrail, retryWhile } from "./trail.js"
import { newerThan } from "./versions.js"

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
    const once = Effect.flatMap(
      trail
        .read("getLatest", vault.getLatest(name))
        .pipe(
          Effect.catchTag("VaultNotFound", () =>
            Effect.fail<StaleAnswer>({ _tag: "StaleAnswer", latest: undefined }),
          ),
        ),
      (latest): Effect.Effect<Verdict, StaleAnswer | { readonly _tag: string; readonly message: string }> => {
        if (latest.versionId === ours.versionId) return Effect.succeed(judgeOurs(latest, expected))
        const stale: StaleAnswer = { _tag: "StaleAnswer", latest }
        if (expected.olderVersionIds.includes(latest.versionId)) return Effect.fail(stale)
        const t = latest.createdAt.getTime()
        const o = ours.createdAt.getTime()
        if (t > o) return Effect.succeed({ _tag: "Superseded", latest })
        if (t < o) return Effect.fail(stale)
        // Same second: the version list (newest first) orders them.
        return Effect.map(trail.read("listVersions", vault.listVersions(name)), (versions) =>
          newerThan(versions, ours).some((v) => v.versionId === latest.versionId)
            ? ({ _tag: "Superseded", latest } as const)
            : ({ _tag: "Stale", latest } as const),
        ).pipe(Effect.flatMap((v) => (v._tag === "Stale" ? Effect.fail(stale) : Effect.succeed<Verdict>(v))))
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
