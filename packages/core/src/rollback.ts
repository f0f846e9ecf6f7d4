/**
 * Step 7, rollback: import the previous material again as a new version, with
 * a key that provably matches its certificate, tagged `certctl-rollback-of`,
 * and verify it like a forward import.
 */
import * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Result from "effect/Result"
import { PEM_CONTENT_TYPE, PKCS12_CONTENT_TYPE, type SecretContentType } from "./contentType.js"
import type { CertificateMaterial, InspectedMaterial } from "./material.js"
import type { PreviousMaterialShortfall, RollbackSource, VersionRef } from "./outcome.js"
import type { MaterialInvalid } from "./ports/PfxCodec.js"
import { PfxCodec } from "./ports/PfxCodec.js"
import { type ImportRequest, Vault, type VaultVersion } from "./ports/Vault.js"
import { pfxPassword, transportPfxOptions } from "./preflight.js"
import type { DeployRequest } from "./request.js"
import {
  CERTIFICATE_ID_TAG,
  isManagedByKvdeploy,
  MAX_OPERATOR_TAGS,
  ROLLBACK_OF_TAG,
  rollbackTags,
  withoutReserved,
} from "./tags.js"
import type { DeployTrail } from "./trail.js"
import {
  type CallFailure,
  callFailureOf,
  confirmSuperseded,
  type Expected,
  judgeLatest,
  verifyLatest,
} from "./verify.js"
import { byCreationLatestFirst, createdSince, VAULT_STAMP_MARGIN_MS } from "./versions.js"

/**
 * The content type a rollback restores: the one the snapshot served, whatever the target's
 * content_type (consumers read what was served before the deploy); PKCS#12 when the vault did not
 * say.
 */
export const rollbackContentTypeOf = (previous: VaultVersion): SecretContentType =>
  previous.contentType === PEM_CONTENT_TYPE ? PEM_CONTENT_TYPE : PKCS12_CONTENT_TYPE

export type RollbackResult =
  | {
      readonly _tag: "Restored"
      readonly version: VaultVersion
      readonly source: RollbackSource
      readonly previousNotAfter: Date
      /**
       * Other writers' versions the rollback now stands over (overwrittenByRollback: listed after
       * its import, before its verify found it latest). Empty when there are none; `undefined` when
       * the versions could not be listed to find out.
       */
      readonly overwritten: ReadonlyArray<VaultVersion> | undefined
      /**
       * Copies of the failed certificate by this certificate id from the snapshot's second that the
       * list before the rollback's import already showed: Key Vault cannot order versions created
       * within one second, so each is an earlier deploy's (which another writer's version replaced
       * before the snapshot) or another deployer's import since the snapshot, which the rollback
       * now stands over. Not known which: said as possible. Empty when none.
       */
      readonly possiblyOverwritten: ReadonlyArray<VaultVersion>
    }
  | {
      readonly _tag: "AlsoFailed"
      readonly reason: string
      readonly rollbackVersionId: string | undefined
      /** Why the backing secret gave no previous material, when that failed the rollback. */
      readonly previousUnavailable?: PreviousMaterialShortfall
      /**
       * The call whose error ended the rollback (a vault call, the backing secret's decoding, the
       * previous material's encoding), when one did; absent when none failed (another writer's
       * version, a rollback version also wrong, nothing to restore) and when a read of the latest
       * answered 404 (the certificate gone is a finding, as the verify's `Unreadable` says it).
       */
      readonly failure?: CallFailure
    }
  /**
   * Another writer's version is latest: found just before the rollback's import (`version`
   * undefined: nothing was written, so as not to clobber it), or after it (`version`: the rollback).
   */
  | {
      readonly _tag: "Superseded"
      readonly version: VaultVersion | undefined
      readonly latest: VaultVersion
    }

interface PreviousMaterial {
  readonly material: CertificateMaterial
  readonly inspected: InspectedMaterial
  readonly source: RollbackSource
}

/** Why candidate material cannot restore the previous version. */
interface Unproven {
  readonly _tag: "Unproven"
  readonly kind: "other-certificate" | "key-mismatch" | "chain-missing" | "unreadable"
  /** Prefixed with the candidate's source. */
  readonly why: string
}

const unproven = (source: RollbackSource, kind: Unproven["kind"], why: string): Unproven => ({
  _tag: "Unproven",
  kind,
  why: `${source}: ${why}`,
})

/**
 * Inspect candidate material; keep it only when it is the previous certificate and the key
 * matches it (I4). The backing secret's is the previous material itself, restored as read. A
 * chain given with a key (the new material's, when the key was reused, or the caller's) was
 * checked against another leaf: only the certificates that link to the previous certificate are
 * kept (none, for a self-signed one), and when none does for a CA-issued one (a renewal by another
 * CA, or a re-keyed one) the candidate is refused: restoring the previous certificate under the
 * new chain would serve a chain that does not issue it.
 */
const provablyPrevious = (
  material: CertificateMaterial,
  previous: VersionRef,
  source: RollbackSource,
): Effect.Effect<PreviousMaterial | Unproven, never, PfxCodec> =>
  Effect.flatMap(Effect.service(PfxCodec), (codec) =>
    codec.inspect(material).pipe(
      Effect.flatMap((inspected): Effect.Effect<PreviousMaterial | Unproven, MaterialInvalid> => {
        if (inspected.leaf.x5t !== previous.x5t)
          return Effect.succeed(
            unproven(
              source,
              "other-certificate",
              `the certificate is not the previous version's (x5t ${inspected.leaf.x5t})`,
            ),
          )
        if (!inspected.keyMatchesLeaf)
          return Effect.succeed(
            unproven(source, "key-mismatch", "the key does not match the previous certificate"),
          )
        // The backing secret is the previous material itself: restored as read, whatever its chain.
        // A key given with a chain that all links to the previous certificate: restored with it.
        if (
          source === "backing-secret" ||
          (inspected.chain.length === material.chain.length &&
            (material.chain.length > 0 || inspected.leaf.selfSigned))
        )
          return Effect.succeed({ material, inspected, source })
        // A self-signed previous certificate needs no chain: restored alone.
        const kept: CertificateMaterial = inspected.leaf.selfSigned
          ? { ...material, chain: [] }
          : { ...material, chain: inspected.chain.map((c) => c.der) }
        if (kept.chain.length === 0 && !inspected.leaf.selfSigned)
          return Effect.succeed(
            unproven(
              source,
              "chain-missing",
              material.chain.length === 0
                ? `no chain came with the key, and the previous certificate is issued by "${inspected.leaf.issuer}": its chain cannot be restored${source === "caller-key" ? " (give the chain with the key)" : ""}`
                : `the chain given with the key does not issue the previous certificate (its issuer "${inspected.leaf.issuer}" is not in it), so the previous chain cannot be restored`,
            ),
          )
        // Some certificates link to the previous certificate and others do not: restore it with those that do.
        return Effect.map(
          codec.inspect(kept),
          (again): PreviousMaterial => ({ material: kept, inspected: again, source }),
        )
      }),
      Effect.catchTag("MaterialInvalid", (e) =>
        Effect.succeed(unproven(source, "unreadable", `unreadable material: ${e.message}`)),
      ),
    ),
  )

/**
 * Why the backing secret gave no previous material, for the advice a failed rollback gives:
 * the permission is missing; the vault refused the request itself (the token, its firewall, no
 * token at all); the previous version is disabled; its key was not exportable; the vault could
 * not be read (an outage, an answer lost or one the adapter failed on: no grant would help); or it
 * was read but held no usable previous material (a VaultMalformedAnswer marked `unrestorable`: no
 * PFX, one that does not open, a key of none of its certificates).
 */
type SecretShortfall = PreviousMaterialShortfall

interface NoPreviousMaterial {
  readonly why: ReadonlyArray<string>
  readonly secret: SecretShortfall
  /** The backing secret's read or decoding that failed, when one did. */
  readonly failure?: CallFailure
}

const shortfallOf = (e: {
  readonly _tag: string
  readonly refusal?: string | undefined
  readonly unrestorable?: boolean | undefined
}): SecretShortfall =>
  e._tag === "VaultForbidden"
    ? e.refusal === undefined || e.refusal === "permission"
      ? "permission"
      : e.refusal === "disabled"
        ? "disabled"
        : "access"
    : e._tag === "VaultNoPrivateKey"
      ? "not-exportable"
      : // A secret that was read but holds nothing restorable (a PFX that does not open with the
        // blank password, no PFX, a key of none of its certificates): not one that "could not be
        // read". Any other malformed answer (the SDK failed on it, it lacked the value) read nothing.
        e._tag === "VaultMalformedAnswer" && e.unrestorable === true
        ? "unusable"
        : "unreadable"

/** The backing secret's shortfall in the rollback's details, where the error's own message says less. */
const secretWhy: Partial<Record<SecretShortfall, string>> = {
  // The backing secret is a secret object of its own: an RBAC role scoped to the certificate does
  // not cover it, which is the likeliest way to lack secrets/get while deploys work.
  permission:
    "forbidden (the identity lacks secrets/get on the backing secret, a secret object of its own: grant it scoped to …/vaults/VAULT/secrets/NAME or to the vault; a role scoped to the certificate alone may not cover it)",
  disabled:
    "the previous version is disabled, and Key Vault reads no disabled secret (enable it to allow a rollback from it)",
  "not-exportable": "the previous key is not exportable",
}

/** What a failed rollback advises, by why the backing secret could not give the previous material. */
const adviceFor: Readonly<Record<SecretShortfall, string>> = {
  permission: "grant secrets/get or keep key history",
  disabled: "enable the previous version (Key Vault reads no disabled secret) or keep key history",
  "not-exportable": "the previous key is not exportable, so only kept key history could restore it",
  access:
    "fix the vault access the backing secret's read was refused for (the token, the vault's network rules or private endpoint, or no token: `kvdeploy doctor` shows which) or keep key history",
  unreadable:
    "the previous version's backing secret could not be read, and not for a refused permission (why, in brackets): restore the previous certificate by hand, or keep key history",
  unusable: "the backing secret held no usable previous material; keep key history",
}

/** Whether a caller's previous key (key history) can restore the version served now. */
export type PreviousKeyFit =
  | { readonly fit: "matches" }
  /** The vault did not return the served version's certificate: nothing to judge against. */
  | { readonly fit: "unknown" }
  | { readonly fit: "does-not-match" | "chain-missing" | "unreadable"; readonly why: string }

/**
 * Judge a caller's previous key (and the chain to restore with it) as a rollback judges it first,
 * against the version the vault serves now: a deploy refuses a key its rollback could not use
 * before it writes, and `plan` reports the same judgement.
 */
export const previousKeyFit = (
  previousKey: Redacted.Redacted<Uint8Array>,
  previousChain: ReadonlyArray<Uint8Array>,
  served: VaultVersion,
): Effect.Effect<PreviousKeyFit, never, PfxCodec> =>
  served.cer === undefined
    ? Effect.succeed({ fit: "unknown" })
    : Effect.map(
        provablyPrevious({ leaf: served.cer, chain: previousChain, key: previousKey }, served, "caller-key"),
        (checked): PreviousKeyFit =>
          "material" in checked
            ? { fit: "matches" }
            : {
                fit:
                  checked.kind === "chain-missing"
                    ? "chain-missing"
                    : checked.kind === "unreadable"
                      ? "unreadable"
                      : "does-not-match",
                why: checked.why.replace(/^caller-key: /, ""),
              },
      )

const findPreviousMaterial = (
  trail: DeployTrail,
  request: DeployRequest,
  previous: VaultVersion,
): Effect.Effect<PreviousMaterial | NoPreviousMaterial, never, Vault | PfxCodec> =>
  Effect.gen(function* () {
    const vault = yield* Vault
    const codec = yield* PfxCodec
    const ref: VersionRef = previous
    const why: Array<string> = []
    const withCer = (key: Redacted.Redacted<Uint8Array>, chain: ReadonlyArray<Uint8Array>) =>
      previous.cer === undefined ? undefined : { leaf: previous.cer, chain, key }

    // 1. A key the caller kept for the previous certificate.
    const callerKey = request.options?.previousKey
    if (callerKey !== undefined) {
      const candidate = withCer(callerKey, request.options?.previousChain ?? [])
      if (candidate === undefined) why.push("caller-key: the vault did not return the previous certificate")
      else {
        const checked = yield* provablyPrevious(candidate, ref, "caller-key")
        if ("material" in checked) return checked
        why.push(checked.why)
      }
    }

    // 2. The previous version's PFX from its backing secret.
    const secret = yield* trail
      .read("getVersionSecret", vault.getVersionSecret(request.target.certificateName, previous.versionId))
      .pipe(
        Effect.map((s) => ({ ok: true as const, s })),
        Effect.catch((e) =>
          Effect.succeed({
            ok: false as const,
            shortfall: shortfallOf(e),
            failure: callFailureOf(e),
            why: `backing-secret: ${secretWhy[shortfallOf(e)] ?? e.message}`,
          }),
        ),
      )
    let shortfall: SecretShortfall = "unusable"
    let failure: CallFailure | undefined
    if (secret.ok) {
      const decoded = yield* codec.decode(secret.s.pfx, secret.s.password).pipe(
        Effect.map((m) => ({ ok: true as const, m })),
        Effect.catchTag("PfxDecodeError", (e) =>
          Effect.succeed({ ok: false as const, why: `backing-secret: ${e.reason}`, tag: e._tag }),
        ),
      )
      if (decoded.ok) {
        const checked = yield* provablyPrevious(decoded.m, ref, "backing-secret")
        if ("material" in checked) return checked
        why.push(checked.why)
      } else {
        why.push(decoded.why)
        failure = { error: decoded.tag, operation: "decode" }
      }
    } else {
      why.push(secret.why)
      shortfall = secret.shortfall
      failure = secret.failure
    }

    // 3. The new key, when the key was reused and it matches the previous certificate.
    const reused = withCer(request.material.key, request.material.chain)
    if (reused === undefined) why.push("reused-key: the vault did not return the previous certificate")
    else {
      const checked = yield* provablyPrevious(reused, ref, "reused-key")
      if ("material" in checked) return checked
      why.push(checked.why)
    }
    return {
      why,
      secret: shortfall,
      ...(failure === undefined ? {} : { failure }),
    } satisfies NoPreviousMaterial
  })

/**
 * Versions another writer imported since the snapshot: listed, neither the snapshot nor this
 * deploy's (the failed version, a reconciliation's other candidates), and created after the
 * snapshot. The rollback would put the snapshot's certificate over them: one imported before the
 * failed version is one the verify could not see (ours was newer). Not counted: kvdeploy's versions
 * of this certificate id that hold the snapshot's certificate or the failed one (another deployer
 * of the same certificate, its own rollback: restoring the snapshot over them undoes no one's
 * intent). Key Vault keeps whole seconds, so a version from the snapshot's own second may be older
 * or newer than it: it is taken for older when it is this certificate's own earlier history
 * (kvdeploy's tags with this certificate id, as deploys and skips within one second leave them, or
 * the version the snapshot rolled back); any other could be newer, and counts.
 */
const importedSinceSnapshot = (
  versions: ReadonlyArray<VaultVersion>,
  previous: VaultVersion,
  failed: VaultVersion,
  alsoFailed: ReadonlyArray<VaultVersion>,
  certificateId: string,
  /**
   * After the rollback (overwrittenByRollback): another deployer's version of the failed certificate
   * counts too (the rollback now stands over it: that deployer's intent is undone).
   */
  failedCopiesCount = false,
): Array<VaultVersion> => {
  const ours = new Set([previous.versionId, failed.versionId, ...alsoFailed.map((v) => v.versionId)])
  const snapshotSecond = previous.createdAt.getTime()
  const thisCertificate = (v: VaultVersion) =>
    isManagedByKvdeploy(v.tags) && v.tags[CERTIFICATE_ID_TAG] === certificateId
  // Versions a listed rollback names: rolled back, so history (an earlier deploy's failed import).
  const rolledBack = new Set(versions.flatMap((v) => v.tags[ROLLBACK_OF_TAG] ?? []))
  const earlierHistory = (v: VaultVersion) =>
    previous.tags[ROLLBACK_OF_TAG] === v.versionId ||
    rolledBack.has(v.versionId) ||
    // After the rollback, a copy of the failed certificate with this id from the snapshot's second
    // that no rollback names is taken for another deployer's (a deploy's own earlier import of it
    // would have been served, and the snapshot found it, unless it was rolled back).
    (thisCertificate(v) && !(failedCopiesCount && v.x5t === failed.x5t))
  return byCreationLatestFirst(
    versions.filter(
      (v) =>
        !ours.has(v.versionId) &&
        !(thisCertificate(v) && (v.x5t === previous.x5t || (!failedCopiesCount && v.x5t === failed.x5t))) &&
        (v.createdAt.getTime() > snapshotSecond ||
          (v.createdAt.getTime() === snapshotSecond && !earlierHistory(v))),
    ),
  )
}

/**
 * The versions listed before the rollback's import: another writer's since the snapshot (none: an
 * empty array), or, when the list cannot be read, the rollback's end with nothing written (it
 * cannot tell it would undo no other writer's version).
 */
function* othersSinceSnapshot(
  trail: DeployTrail,
  request: DeployRequest,
  previous: VaultVersion,
  failed: VaultVersion,
  alsoFailed: ReadonlyArray<VaultVersion>,
): Effect.fn.Return<
  { readonly others: ReadonlyArray<VaultVersion>; readonly shown: ReadonlySet<string> } | RollbackResult,
  never,
  Vault
> {
  const vault = yield* Vault
  const listed = yield* trail
    .read("listVersions", vault.listVersions(request.target.certificateName))
    .pipe(Effect.result)
  if (listed._tag === "Success")
    return {
      others: importedSinceSnapshot(listed.success, previous, failed, alsoFailed, request.certificateId),
      shown: new Set(listed.success.map((v) => v.versionId)),
    }
  trail.note(
    `rollback: the versions could not be listed before the import (${listed.failure._tag}); not written`,
  )
  return {
    _tag: "AlsoFailed",
    reason: `the certificate's versions could not be listed just before the rollback's import, so no rollback was written (it could have put the previous certificate over a version another writer imported since the snapshot): ${listed.failure.message}`,
    rollbackVersionId: undefined,
    failure: callFailureOf(listed.failure),
  }
}

/** Up to three versions named with their creation times, and how many more: what a reason lists. */
export const namedVersions = (versions: ReadonlyArray<VaultVersion>): string =>
  `${versions
    .slice(0, 3)
    .map((v) => `${v.versionId} (created ${v.createdAt.toISOString()})`)
    .join(", ")}${versions.length > 3 ? ` and ${versions.length - 3} more` : ""}`

/**
 * After a verified rollback: the versions of other writers it now stands over. Those the list before
 * its import did not show (imported while the import was in flight: Key Vault has no conditional
 * import), and another deployer's copies of the failed certificate since the snapshot (that list
 * leaves them to the rollback, which restores the snapshot over them): importedSinceSnapshot's
 * rule with those copies counted, this rollback's versions counted as ours, none created after it.
 * One list request, on the rollback's path only. `undefined` when the list cannot be read: the
 * rollback stands, and the outcome says this was not checked.
 */
const overwrittenByRollback = (
  trail: DeployTrail,
  listed: Result.Result<ReadonlyArray<VaultVersion>, { readonly _tag: string }>,
  request: DeployRequest,
  previous: VaultVersion,
  failed: VaultVersion,
  alsoFailed: ReadonlyArray<VaultVersion>,
  rollback: VaultVersion,
  alsoOurs: ReadonlyArray<VaultVersion>,
  /** The version ids the list before the rollback's import showed. */
  shownBefore: ReadonlySet<string>,
):
  | { readonly overwritten: ReadonlyArray<VaultVersion>; readonly possibly: ReadonlyArray<VaultVersion> }
  | undefined => {
  if (listed._tag === "Failure") {
    trail.note(
      `rollback: the versions could not be listed after it (${listed.failure._tag}); another writer's import during it not ruled out`,
    )
    return undefined
  }
  const ours = [...alsoFailed, rollback, ...alsoOurs]
  // Listed before the verify that found the rollback latest: none of them is newer than it.
  const others = importedSinceSnapshot(
    listed.success,
    previous,
    failed,
    ours,
    request.certificateId,
    true,
  ).filter((v) => v.createdAt.getTime() <= rollback.createdAt.getTime())
  // A copy of the failed certificate by this id from the snapshot's second that the list before the
  // import already showed cannot be ordered against the snapshot by creation times: an earlier
  // deploy's, which another writer's version (the snapshot's) replaced within that second, or another
  // deployer's since. When the vault answered the snapshot read well after that second (its Date
  // header), the copy was created before that read, which found the snapshot's version latest: so
  // before it, earlier history, not under the rollback at all.
  const unordered = (v: VaultVersion) =>
    shownBefore.has(v.versionId) &&
    v.createdAt.getTime() === previous.createdAt.getTime() &&
    v.x5t === failed.x5t &&
    isManagedByKvdeploy(v.tags) &&
    v.tags[CERTIFICATE_ID_TAG] === request.certificateId
  const snapshotReadLater =
    previous.answeredAtMs !== undefined &&
    previous.answeredAtMs >= previous.createdAt.getTime() + VAULT_STAMP_MARGIN_MS
  const overwritten = others.filter((v) => !unordered(v))
  const possibly = snapshotReadLater ? [] : others.filter(unordered)
  if (overwritten.length > 0)
    trail.note(`rollback: it stands over another writer's ${overwritten.map((v) => v.versionId).join(", ")}`)
  if (possibly.length > 0)
    trail.note(
      `rollback: it may stand over ${possibly.map((v) => v.versionId).join(", ")} (a copy of the new certificate from the snapshot's second: an earlier deploy's, or another deployer's since the snapshot)`,
    )
  return { overwritten, possibly }
}

/**
 * What the versions another writer imported since the snapshot (listed before the latest was read
 * again, which let the rollback go on) make of it: none, go on (undefined). One from a later second
 * than the failed version is newer than ours, so the latest is not ours whatever that read showed
 * (a lagging replica): `Superseded`, nothing written. Any other (from before ours, which the verify
 * could not see, or from our second): nothing written, `RollbackFailed` naming them.
 */
const judgeOthersSinceSnapshot = (
  trail: DeployTrail,
  others: ReadonlyArray<VaultVersion>,
  previous: VaultVersion,
  failed: VaultVersion,
): RollbackResult | undefined => {
  const first = others[0]
  if (first === undefined) return undefined
  if (first.createdAt.getTime() > failed.createdAt.getTime()) {
    trail.note(
      `rollback: the versions list another writer's ${first.versionId}, newer than ours; not written`,
    )
    return { _tag: "Superseded", version: undefined, latest: first }
  }
  const named = namedVersions(others)
  trail.note(
    `rollback: another writer imported ${others.map((v) => v.versionId).join(", ")} since the snapshot; not written`,
  )
  return {
    _tag: "AlsoFailed",
    reason: `another writer imported ${others.length === 1 ? "a version" : "versions"} after the snapshot (${previous.versionId}) was read: ${named}; restoring the snapshot's certificate would put it over ${others.length === 1 ? "that newer write" : "those newer writes"}, so no rollback was written: decide which certificate the vault should serve (\`kvdeploy versions\` lists them) and deploy it`,
    rollbackVersionId: undefined,
  }
}

/**
 * The latest read again before the rollback's import. Key Vault has no conditional import (no
 * If-Match on a certificate's import), so the import would put the previous certificate over any
 * version another writer imported since the verify read: this read, after the version list, is the
 * last the rollback can make, and it narrows the window (to its own round trip) without closing it.
 * Latest is our failed version, or a version older than it (a lagging read: the verify saw ours
 * latest): go on (undefined; what the list showed is judged then). Another writer's version from the failed version's second is
 * confirmed as the verify confirms one (a lagging read can show it without ours); one that stands,
 * or one from a later second, is `Superseded` with nothing written. A read that fails, or reads
 * that keep disagreeing, write nothing either: the rollback cannot tell it would clobber nothing.
 * A read's error is named as the outcome's, but not a 404 (the certificate gone is a finding).
 */
function* latestBeforeImport(
  trail: DeployTrail,
  name: string,
  previous: VaultVersion,
  failed: VaultVersion,
  alsoFailed: ReadonlyArray<VaultVersion>,
): Effect.fn.Return<RollbackResult | undefined, never, Vault> {
  const vault = yield* Vault
  const read = yield* trail.read("getLatest", vault.getLatest(name)).pipe(Effect.result)
  if (read._tag === "Failure") {
    trail.note(
      `rollback: the latest could not be read again before the import (${read.failure._tag}); not written`,
    )
    return {
      _tag: "AlsoFailed",
      reason: `the latest version could not be read again just before the rollback's import, so no rollback was written (it could have put the previous certificate over another writer's newer version): ${read.failure.message}`,
      rollbackVersionId: undefined,
      // A 404 is a finding (the certificate is gone), not a call's error, as the verify's reads.
      ...(read.failure._tag === "VaultNotFound" ? {} : { failure: callFailureOf(read.failure) }),
    }
  }
  // Judged as the failed version's verify judged it: only whether it is ours, older, or newer matters.
  const expected: Expected = {
    version: failed,
    // A reconciliation's other candidates for the failed import are this deploy's too, not another writer's.
    alsoOurs: alsoFailed,
    x5t: failed.x5t,
    serialHex: failed.serialHex,
    tags: {},
    olderVersionIds: [previous.versionId],
  }
  let verdict = judgeLatest(read.success, expected)
  if (verdict._tag === "Superseded" && verdict.latest.createdAt.getTime() === failed.createdAt.getTime())
    verdict = yield* confirmSuperseded(trail, name, expected, verdict, "rollback")
  switch (verdict._tag) {
    case "Superseded":
      trail.note(`rollback: another writer's ${verdict.latest.versionId} is latest; not written`)
      return { _tag: "Superseded", version: undefined, latest: verdict.latest }
    case "Unreadable":
      trail.note("rollback: the latest could not be established before the import; not written")
      return {
        _tag: "AlsoFailed",
        reason: `the latest version could not be established just before the rollback's import, so no rollback was written (it could have put the previous certificate over another writer's newer version): ${verdict.detail}`,
        rollbackVersionId: undefined,
        ...(verdict.failure === undefined ? {} : { failure: verdict.failure }),
      }
    default:
      return undefined
  }
}

export const rollback = Effect.fnUntraced(function* (
  trail: DeployTrail,
  request: DeployRequest,
  previous: VaultVersion | undefined,
  failed: VaultVersion,
  /** Other versions a reconciliation found that can equally be the failed import (its `alsoOurs`). */
  alsoFailed: ReadonlyArray<VaultVersion> = [],
) {
  const vault = yield* Vault
  const codec = yield* PfxCodec
  const name = request.target.certificateName
  if (previous === undefined) {
    trail.note("rollback: no previous version (first deploy)")
    return {
      _tag: "AlsoFailed",
      reason: "no previous version to restore: this was the first deploy",
      rollbackVersionId: undefined,
    } satisfies RollbackResult
  }
  const found = yield* findPreviousMaterial(trail, request, previous)
  if (!("material" in found)) {
    trail.note(`rollback: previous key unavailable (${found.why.join("; ")})`)
    return {
      _tag: "AlsoFailed",
      reason: `previous key unavailable: ${adviceFor[found.secret]} (${found.why.join("; ")})`,
      rollbackVersionId: undefined,
      previousUnavailable: found.secret,
      ...(found.failure === undefined ? {} : { failure: found.failure }),
    } satisfies RollbackResult
  }
  trail.note(`rollback: previous material from ${found.source}`)
  // Restored in the content type the snapshot served: a PEM secret stays PEM for its consumers.
  const contentType = rollbackContentTypeOf(previous)
  if (contentType === PEM_CONTENT_TYPE) trail.note("rollback: restoring the secret as PEM, as it was served")
  const content = yield* (
    contentType === PEM_CONTENT_TYPE
      ? codec.encodePem(found.material)
      : codec.encode(found.material, transportPfxOptions(request.target.pfxEncoding))
  ).pipe(Effect.result)
  if (content._tag === "Failure") {
    return {
      _tag: "AlsoFailed",
      reason: `the previous ${contentType === PEM_CONTENT_TYPE ? "PEM" : "PFX"} could not be built: ${content.failure.message}`,
      rollbackVersionId: undefined,
      failure: {
        error: content.failure._tag,
        operation: contentType === PEM_CONTENT_TYPE ? "encodePem" : "encode",
      },
    } satisfies RollbackResult
  }
  // The restored version carries what the snapshot carried: its operator tags (not the failed
  // request's), plus the reserved tags and certctl-rollback-of.
  const previousOperatorTags = Object.entries(withoutReserved(previous.tags)).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  )
  const kept = previousOperatorTags.slice(0, MAX_OPERATOR_TAGS)
  if (kept.length < previousOperatorTags.length) {
    // An adopted version can carry more tags than fit beside the reserved ones (Key Vault allows 15).
    trail.note(
      `rollback: ${previousOperatorTags.length - kept.length} of the previous version's tags do not fit beside kvdeploy's (dropped: ${previousOperatorTags
        .slice(MAX_OPERATOR_TAGS)
        .map(([k]) => k)
        .join(", ")})`,
    )
  }
  const tags = rollbackTags(Object.fromEntries(kept), request.certificateId, failed.versionId)
  const common = { name, tags, keyFacts: found.inspected.key, leaf: found.inspected.leaf }
  const importRequest: ImportRequest =
    contentType === PEM_CONTENT_TYPE
      ? { ...common, pem: content.success }
      : { ...common, pfx: content.success, password: pfxPassword }
  // The versions listed, then the latest read again (the last read before the import): another
  // writer's version newer than the failed one is not written over (Superseded), nor one from
  // between the snapshot and the failed import, which the verify could not see.
  const listedBefore = yield* othersSinceSnapshot(trail, request, previous, failed, alsoFailed)
  if ("_tag" in listedBefore) return listedBefore
  const { others, shown } = listedBefore
  const overtaken = yield* latestBeforeImport(trail, name, previous, failed, alsoFailed)
  if (overtaken !== undefined) return overtaken
  const undone = judgeOthersSinceSnapshot(trail, others, previous, failed)
  if (undone !== undefined) return undone
  const imported = yield* trail.call("importVersion", vault.importVersion(importRequest)).pipe(Effect.result)
  let version: VaultVersion
  let alsoOurs: ReadonlyArray<VaultVersion> = []
  if (imported._tag === "Success") {
    version = imported.success
  } else if (imported.failure._tag === "VaultAmbiguous") {
    trail.note("rollback: import outcome unknown; reconciling from the version list")
    const listed = yield* trail.read("listVersions", vault.listVersions(name)).pipe(Effect.result)
    if (listed._tag === "Failure") {
      return {
        _tag: "AlsoFailed",
        reason: `rollback import outcome unknown and the versions could not be listed: ${listed.failure.message}`,
        rollbackVersionId: undefined,
        failure: callFailureOf(listed.failure),
      } satisfies RollbackResult
    }
    // Created in the failed version's second or later; the list's order says nothing within a second.
    const candidates = byCreationLatestFirst(
      createdSince(listed.success, failed).filter(
        (v) =>
          v.x5t === previous.x5t &&
          v.tags[ROLLBACK_OF_TAG] === failed.versionId &&
          isManagedByKvdeploy(v.tags),
      ),
    )
    const match = candidates[0]
    if (match === undefined) {
      return {
        _tag: "AlsoFailed",
        reason: `the rollback import did not take effect: ${imported.failure.message}`,
        rollbackVersionId: undefined,
        failure: callFailureOf(imported.failure),
      } satisfies RollbackResult
    }
    version = match
    alsoOurs = candidates.slice(1)
  } else {
    trail.note(`rollback: import failed (${imported.failure._tag})`)
    return {
      _tag: "AlsoFailed",
      reason: `the rollback import failed: ${imported.failure.message}`,
      rollbackVersionId: undefined,
      failure: callFailureOf(imported.failure),
    } satisfies RollbackResult
  }
  trail.note(`rollback: imported ${version.versionId}`)
  const expected: Expected = {
    version,
    alsoOurs,
    x5t: previous.x5t,
    serialHex: previous.serialHex,
    tags,
    olderVersionIds: [previous.versionId, failed.versionId, ...alsoFailed.map((v) => v.versionId)],
  }
  // Listed before the verify (not after it), so the verify stays the last read: a version listed
  // here is under the rollback exactly when the verify finds the rollback latest (the latest is the
  // last created), and a write after the list is judged by the verify as any other.
  const listedAfter = yield* trail
    .read("listVersions", vault.listVersions(request.target.certificateName))
    .pipe(Effect.result)
  let verdict = yield* verifyLatest(trail, name, expected)
  // Another writer's version from the rollback's own second: confirmed as the forward verify does.
  if (verdict._tag === "Superseded" && verdict.latest.createdAt.getTime() === version.createdAt.getTime())
    verdict = yield* confirmSuperseded(trail, name, expected, verdict, "rollback")
  if (verdict._tag === "Verified" || verdict._tag === "Mismatch") version = verdict.latest
  switch (verdict._tag) {
    case "Verified": {
      trail.note("rollback: verified")
      const overwritten = overwrittenByRollback(
        trail,
        listedAfter,
        request,
        previous,
        failed,
        alsoFailed,
        version,
        alsoOurs,
        shown,
      )
      return {
        _tag: "Restored",
        version,
        source: found.source,
        previousNotAfter: found.inspected.leaf.notAfter,
        overwritten: overwritten?.overwritten,
        possiblyOverwritten: overwritten?.possibly ?? [],
      } satisfies RollbackResult
    }
    case "Superseded":
      trail.note(`rollback: superseded by ${verdict.latest.versionId}`)
      return { _tag: "Superseded", version, latest: verdict.latest } satisfies RollbackResult
    case "Unreadable":
      return {
        _tag: "AlsoFailed",
        reason: `the rollback could not be verified: ${verdict.detail}`,
        rollbackVersionId: version.versionId,
        ...(verdict.failure === undefined ? {} : { failure: verdict.failure }),
      } satisfies RollbackResult
    case "Stale":
      return {
        _tag: "AlsoFailed",
        reason: `the rollback could not be verified: the vault still serves ${verdict.latest.versionId}`,
        rollbackVersionId: version.versionId,
      } satisfies RollbackResult
    case "Mismatch":
      return {
        _tag: "AlsoFailed",
        reason: `the rollback version is also wrong: ${verdict.differences.join("; ")}`,
        rollbackVersionId: version.versionId,
      } satisfies RollbackResult
  }
})
