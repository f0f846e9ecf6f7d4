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
import type * as Result from "effect/Result"
import {
  isRetriableRead,
  Vault,
  type VaultError,
  type VaultNotFound,
  type VaultVersion,
} from "./ports/Vault.js"
import { hasTags } from "./tags.js"
import { type DeployTrail, retryAfter, retryWhile } from "./trail.js"

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
  /**
   * The forward verify's only: the content type of the secret the import wrote. A newer version
   * from another writer that holds this certificate, enabled, with exactly these tags and this
   * content type (another kvdeploy deploying the same files at once) is then judged as ours
   * (`Verified`): the vault serves what the deploy set out to serve. Absent (the rollback's reads):
   * every newer version of another writer's is `Superseded`, so a rollback never writes over one.
   */
  readonly identicalContentType?: string
}

export type Verdict =
  | { readonly _tag: "Verified"; readonly latest: VaultVersion }
  | {
      readonly _tag: "Unreadable"
      readonly detail: string
      /** The read's error, when a read failed (not when reads disagreed, or answered 404). */
      readonly failure?: CallFailure
    }
  | { readonly _tag: "Stale"; readonly latest: VaultVersion }
  | { readonly _tag: "Superseded"; readonly latest: VaultVersion }
  | { readonly _tag: "Mismatch"; readonly latest: VaultVersion; readonly differences: ReadonlyArray<string> }

/** A call's error as an outcome names it: its tag and the port operation that failed. */
export interface CallFailure {
  readonly error: string
  readonly operation: string
}

/** The error's tag and operation, as an outcome's `error` and `operation`. */
export const callFailureOf = (e: { readonly _tag: string; readonly operation: string }): CallFailure => ({
  error: e._tag,
  operation: e.operation,
})

/** The vault answered a version older than ours, or no version at all: read again. */
export interface StaleAnswer {
  readonly _tag: "StaleAnswer"
  readonly latest: VaultVersion | undefined
}

type ReadError = VaultNotFound | VaultError

const judgeOurs = (latest: VaultVersion, expected: Expected): Verdict => {
  const tagsInPlace = hasTags(latest.tags, expected.tags)
  // The common case allocates no list of differences.
  if (latest.x5t === expected.x5t && latest.serialHex === expected.serialHex && latest.enabled && tagsInPlace)
    return { _tag: "Verified", latest }
  const differences: Array<string> = []
  if (latest.x5t !== expected.x5t) differences.push(`x5t is ${latest.x5t}, expected ${expected.x5t}`)
  if (latest.serialHex !== expected.serialHex)
    differences.push(`serial is ${latest.serialHex}, expected ${expected.serialHex}`)
  if (!latest.enabled) differences.push("the version is disabled")
  if (!tagsInPlace) differences.push("kvdeploy's tags are missing or changed")
  return { _tag: "Mismatch", latest, differences }
}

/**
 * Another writer's version that is this deploy's import in all the vault says of it (see
 * `Expected.identicalContentType`): this certificate and serial, enabled, exactly the tags (none
 * more), the content type. The chain is not compared (a read of the latest does not carry it).
 */
const identicalToOurs = (latest: VaultVersion, expected: Expected): boolean => {
  if (expected.identicalContentType === undefined) return false
  const keys = Object.keys(latest.tags)
  return (
    latest.x5t === expected.x5t &&
    latest.serialHex === expected.serialHex &&
    latest.enabled &&
    latest.contentType === expected.identicalContentType &&
    keys.length === Object.keys(expected.tags).length &&
    keys.every((k) => expected.tags[k] === latest.tags[k])
  )
}

/** Judge one answer of `getLatest` (plain code: no effect is built when the answer settles it). */
export const judgeLatest = (latest: VaultVersion, expected: Expected): Verdict | StaleAnswer => {
  const ours = expected.version
  if (latest.versionId === ours.versionId || expected.alsoOurs?.some((v) => v.versionId === latest.versionId))
    return judgeOurs(latest, expected)
  // Known to predate ours: a stale read or a lost write.
  if (expected.olderVersionIds.includes(latest.versionId)) return { _tag: "StaleAnswer", latest }
  // Latest is the most recently created version: one created in our second or later is newer.
  if (latest.createdAt.getTime() >= ours.createdAt.getTime())
    return identicalToOurs(latest, expected) ? { _tag: "Verified", latest } : { _tag: "Superseded", latest }
  return { _tag: "StaleAnswer", latest }
}

const isStale = (e: { readonly _tag: string }): boolean => e._tag === "StaleAnswer"

const judged = (latest: VaultVersion, expected: Expected): Effect.Effect<Verdict, StaleAnswer> => {
  const j = judgeLatest(latest, expected)
  return j._tag === "StaleAnswer" ? Effect.fail(j) : Effect.succeed(j)
}

const notFoundIsStale = <A, E extends { readonly _tag: string }>(
  read: Effect.Effect<A, E>,
): Effect.Effect<A, Exclude<E, VaultNotFound> | StaleAnswer> =>
  Effect.catchIf(
    read,
    (e): e is Extract<E, VaultNotFound> => e._tag === "VaultNotFound",
    () => Effect.fail<StaleAnswer>({ _tag: "StaleAnswer", latest: undefined }),
  ) as Effect.Effect<A, Exclude<E, VaultNotFound> | StaleAnswer>

const toVerdict = (e: StaleAnswer | VaultError): Effect.Effect<Verdict> =>
  Effect.succeed<Verdict>(
    e._tag !== "StaleAnswer"
      ? { _tag: "Unreadable", detail: e.message, failure: callFailureOf(e) }
      : e.latest !== undefined
        ? { _tag: "Stale", latest: e.latest }
        : {
            _tag: "Unreadable",
            // The verify's reads, its retries included, ended in a 404. Someone deleting the
            // certificate since the import is one way to get here.
            detail:
              "the vault says the certificate does not exist: it may have been deleted since the import (a soft-deleted certificate is listed among the vault's deleted certificates)",
          },
  )

/** One read of the latest (transient errors retried), judged; a stale answer fails with `StaleAnswer`. */
const readAndJudge = (
  trail: DeployTrail,
  vault: (typeof Vault)["Service"],
  name: string,
  expected: Expected,
): Effect.Effect<Verdict, StaleAnswer | VaultError> =>
  Effect.flatMap(notFoundIsStale(trail.read("getLatest", vault.getLatest(name))), (latest) =>
    judged(latest, expected),
  )

export const verifyLatest = (
  trail: DeployTrail,
  name: string,
  expected: Expected,
): Effect.Effect<Verdict, never, Vault> =>
  Effect.flatMap(Effect.service(Vault), (vault) =>
    retryWhile(readAndJudge(trail, vault, name, expected), isStale).pipe(Effect.catch(toVerdict)),
  )

/**
 * The rest of `verifyLatest` when its first `getLatest` was already made (and
 * counted) and did not settle the verdict: the same retries, from where that
 * first attempt left off, so calls and backoff are exactly `verifyLatest`'s.
 */
export const verifyAfterFirst = (
  trail: DeployTrail,
  name: string,
  expected: Expected,
  first: Result.Result<VaultVersion, ReadError>,
): Effect.Effect<Verdict, never, Vault> =>
  Effect.flatMap(Effect.service(Vault), (vault) => {
    let firstJudged: Effect.Effect<Verdict, StaleAnswer | VaultError>
    if (first._tag === "Success") firstJudged = judged(first.success, expected)
    else if (first.failure._tag === "VaultNotFound")
      firstJudged = Effect.fail({ _tag: "StaleAnswer", latest: undefined })
    else if (isRetriableRead(first.failure))
      firstJudged = Effect.flatMap(
        notFoundIsStale(
          retryAfter(first.failure, trail.call("getLatest", vault.getLatest(name)), isRetriableRead),
        ),
        (latest) => judged(latest, expected),
      )
    else firstJudged = Effect.fail(first.failure)
    return Effect.catchIf(firstJudged, isStale, (stale) =>
      retryAfter<Verdict, StaleAnswer | VaultError>(
        stale,
        readAndJudge(trail, vault, name, expected),
        isStale,
      ),
    ).pipe(Effect.catch(toVerdict))
  })

/**
 * Another writer's version from our own second is latest (after the forward import, or the
 * rollback's). Key Vault's whole seconds do not order the two, and a lagging read can show either
 * without the other: read again until two reads in a row answer the same version (at most three
 * more), and judge that one. Reads that keep disagreeing, or that settle on a version older than
 * ours after showing the other writer's, establish nothing (Unreadable), nor does a read that fails
 * (naming its error, but not for a 404: the certificate gone is a finding, as in toVerdict). `step`
 * names the trail's notes ("verify", "rollback").
 */
export function* confirmSuperseded(
  trail: DeployTrail,
  name: string,
  expected: Expected,
  first: Extract<Verdict, { readonly _tag: "Superseded" }>,
  step = "verify",
): Effect.fn.Return<Verdict, never, Vault> {
  const vault = yield* Vault
  let last = first.latest
  for (let i = 0; i < 3; i++) {
    trail.vaultCalls++
    const again = yield* Effect.result(vault.getLatest(name))
    if (again._tag === "Failure") {
      trail.unsent(again.failure)
      // One read of a same-second version proves nothing (a lagging replica shows the same), so a
      // failed read leaves it unconfirmed: Unreadable, not the first verdict. A rollback would
      // otherwise report Superseded over our own wrong version, which nobody then looks at.
      // A 404 is a finding (the certificate is gone), not a call's error: no `failure`, as toVerdict.
      return {
        _tag: "Unreadable",
        detail: `one read showed another writer's ${first.latest.versionId} from our second as latest, and the read to confirm it failed (${again.failure.message})`,
        ...(again.failure._tag === "VaultNotFound" ? {} : { failure: callFailureOf(again.failure) }),
      }
    }
    if (again.success.versionId === last.versionId) {
      const judged = judgeLatest(again.success, expected)
      // Two reads agree on a version older than ours, after one showed the other writer's: a
      // lagging pair, which confirms neither that writer's version nor ours.
      if (judged._tag === "StaleAnswer")
        return {
          _tag: "Unreadable",
          detail: `reads of the latest version disagree (another writer's ${first.latest.versionId} from our second, then the older ${last.versionId} twice)`,
        }
      if (judged._tag !== "Superseded")
        trail.note(
          judged._tag === "Verified" && judged.latest.versionId === first.latest.versionId
            ? `${step}: two more reads serve the other writer's ${last.versionId}, identical to ours`
            : `${step}: two more reads serve ours, not the other writer's`,
        )
      return judged
    }
    last = again.success
  }
  return {
    _tag: "Unreadable",
    detail: `reads of the latest version keep disagreeing (another writer's ${first.latest.versionId} from our second, then ${last.versionId})`,
  }
}
