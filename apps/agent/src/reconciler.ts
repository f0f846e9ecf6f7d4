/**
 * The reconcile loop. Each deployment compares its source with what the vault
 * serves (one request when they agree) and deploys (core's deploy program)
 * when they differ. A deployment runs in its own fiber: triggered on start,
 * on a change of its files, on the interval and on reload; retried with
 * jittered exponential backoff (at least the vault's Retry-After) while it
 * fails; never two runs of the same deployment at once.
 *
 * Scheduling: global permits (first come, first served: permits.ts) bound the deployments in progress; every
 * vault request spends from its vault's budget (imports and other requests
 * separately, sliding windows, a gate closed by Retry-After). A deployment
 * waits for its vault's lane, its import permit (when a deploy is likely) and
 * its vault's gate *before* it takes a global permit, so a throttled vault
 * holds only its own lane. A slow vault holds a global permit per request in
 * flight, up to its lane: slow vaults whose lanes add up to `concurrency`
 * take every global permit (docs/agent.md says so).
 *
 * Interruption: before the import a deploy can be interrupted (nothing was
 * written); from the import on it runs to its end, rollback included.
 *
 * Listing: a pass over every deployment (start, interval, reload) first lists
 * the certificates of each vault it covers with enough deployments
 * (`vault_list_min_deployments`): one request per 25 certificates, each entry
 * the latest version's x5t, enabled flag and tags. A deployment whose entry
 * shows its source in place (core's servesInPlace, the rule a read uses) is
 * done without a read of its own; anything else (absent, different, a list
 * that failed or stopped early, an entry older than `listedMaxAgeNanos`) is read
 * and decided as before. The list only ever confirms: it never starts a deploy.
 */
import {
  AuditLog,
  type AuditRecord,
  adoptAdvice,
  type DeployOutcome,
  deploy,
  forwardTags,
  interruptibleUntilWritten,
  type ListedCertificate,
  Metrics,
  notManagedFix,
  PfxCodec,
  ROLLBACK_OF_TAG,
  servesInPlace,
  type TargetConfig,
  Vault,
  type VaultVersion,
  wasUnsent,
} from "@kvdeploy/core"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Result from "effect/Result"
import type { AgentMetrics } from "./agentMetrics.js"
import { backoffSchedule, retryAfterFirstFailure } from "./backoff.js"
import { type ImportReservation, makeVaultBudgetUnsafe, type VaultBudget } from "./budget.js"
import {
  type AgentConfig,
  type AgentSettings,
  type Deployment,
  isDeploymentOf,
  type Pickup,
} from "./config.js"
import { exposedGc, exposedMajorGc, makeIdleRelease } from "./idleRelease.js"
import { internalErrorFix, internalErrorMessage } from "./internalError.js"
import { MaterialWorkers } from "./materialPool.js"
import { makePermits, type Permits } from "./permits.js"
import { checkPickup } from "./pickup.js"
import {
  EARLIEST_NOT_AFTER_RULE,
  materialOf,
  readSource,
  type SourceBroken,
  type SourceBytes,
  type SourceFacts,
  type SourceStamp,
  type SourceUnchanged,
  unchangedSince,
} from "./source.js"
import type { DeploymentRecord, StateStore } from "./state.js"
import { vaultReadFix } from "./vaultReadFix.js"
import { type VaultAccessUnavailable, Vaults } from "./vaults.js"

/** Outcomes after which the agent does not deploy the same source again: they need a person. */
const HOLDING: ReadonlySet<string> = new Set(["RolledBack", "RollbackFailed", "Superseded"])

/** A reconcile that did not reach its goal and will be retried. */
export class AttemptFailed extends Data.TaggedError("AttemptFailed")<{
  readonly outcome: string
  readonly reason: string
  readonly retryAfterMs: number | undefined
}> {}

type Phase = "idle" | "waiting" | "attempting"
type InFlight = "deploying" | "committed" | "rolling-back"

interface Slot {
  deployment: Deployment
  phase: Phase
  again: boolean
  /** Between its first failed attempt and the end of its retries: an interval pass leaves it to its backoff. */
  backingOff: boolean
  /** The last trigger's reason (`start`, `interval`, `reload`, `file change`): the next run's `trigger`. */
  cause: string | undefined
  generation: number
  fiber: Fiber.Fiber<void> | undefined
  attempted: boolean
  facts: SourceFacts | undefined
  /** The last whole read of the source (no bytes): a pass that finds the files as stamped does not read them. */
  stamp: SourceStamp | undefined
  /** The deployment's vault (Vaults.forTarget), once made. */
  vault: Vault["Service"] | undefined
  /** The facts whose expiry the catalogue's gauge holds (set again only when they change). */
  expiryRecorded: SourceFacts | undefined
  /**
   * The notAfter (ISO) the vault expiry series was last set to for this deployment, for its state
   * record; null when a read since found the vault serving nothing (the series removed).
   */
  servedNotAfter: string | null | undefined
  /** The tags a version in place carries (forwardTags), for the deployment they were computed for. */
  expectedTags:
    | { readonly deployment: Deployment; readonly tags: Readonly<Record<string, string>> }
    | undefined
  /**
   * The certificate's entry in a list of its vault, for the next attempt (used once, and only by
   * the deployment it was listed for: a reload may have moved this one to another vault since).
   */
  listed:
    | {
        readonly entry: ListedCertificate
        /** When the page came, by the Clock's monotonic time (a system clock set back makes no old page fresh). */
        readonly atNanos: bigint
        readonly deployment: Deployment
      }
    | undefined
  /** `attemptSeq` when this deployment's last attempt began or ended. */
  touchedSeq: number
  /** An attempt of this deployment is running (of any generation: a deploy past its import runs to its end). */
  inAttempt: boolean
  /** The pass whose attempt of this deployment has not begun yet. */
  pass: Pass | undefined
  /**
   * Its last attempt ended for want of a token, and its line said so: the next attempts that end so
   * say nothing more (the identity's own lines follow that outage: identityHealth.ts).
   */
  noTokenTold: boolean
  /**
   * Its reads of the vault fail (not for want of a token), since `sinceMs`, `failures` of them: the
   * first one's line said so, the next ones are debug lines, and the first read that succeeds says
   * the vault is readable again. Not ended by other outcomes (a broken source meanwhile).
   */
  unread: { readonly sinceMs: number; failures: number } | undefined
  /**
   * The version this deployment last deployed or found serving its source, in this process (for
   * the configuration `slot.deployment`): kept through attempts that decide nothing (a read that
   * failed, a broken source), which overwrite the state record. Its creation time when a read or
   * the deploy's own requests said it. See `OwnVersion` and `anotherWritersVersion`.
   */
  own: OwnVersion | undefined
}

/**
 * The version a deployment last deployed or found in place (its id unknown when only a list entry
 * confirmed it), with the source certificate it serves and, when known, when the vault created it.
 */
interface OwnVersion {
  readonly versionId: string | undefined
  readonly x5t: string
  readonly createdAtMs: number | undefined
}

/** A pass over every deployment, until each one's first attempt of it is over. */
interface Pass {
  readonly reason: string
  /** On the monotonic clock: a pass's duration is not moved by a wall clock set back or forward. */
  readonly startedAtNanos: bigint
  remaining: number
  readonly deployments: number
  /** Found in place: from a list entry, and from a read of its own. */
  listedInPlace: number
  readInPlace: number
  /** List pages read for this pass, across its vaults. */
  listPages: number
  /** Deployments the next pass took before their attempt in this one: the pass did not get through. */
  superseded: number
  /** Why the pass that took them began (`interval`, `reload`, a file change…), once one did. */
  overtakenBy?: string
}

/** A deployment in a vault's list, with the deployment (configuration) it was grouped under. */
interface Listing {
  readonly slot: Slot
  readonly deployment: Deployment
}

/** What an attempt did, for the in-pass collections and the pass's counts. */
interface Work {
  /** It parsed or deployed. */
  heavy: boolean
  /** It found the source in place, from a list entry or from a read of its own. */
  inPlace?: "list" | "read"
}

/** A consumer's pickup check an attempt left to run once its permits are given back. */
interface PickupDue {
  readonly deployment: Deployment
  /** The thumbprint the vault serves for it: the source's. */
  readonly x5t: string
}

/** A list entry older than this (30 s) is not used: the deployment reads its certificate instead. */
const listedMaxAgeNanos = 30_000_000_000n

/**
 * How old the attempt's read of the latest version may be when the deploy starts and still be its
 * snapshot (counted from when the read finished). The deploy checks the vault against its snapshot
 * (the ownership of what is served, the version a rollback restores, the versions an ambiguous import
 * looks among): a read from before a long wait (the import permit, a parse queued on the material
 * workers) would miss another writer's version imported meanwhile. 1 s keeps the read in the common
 * case (read, parse, deploy back to back); an older one is not passed, and the deploy reads its own.
 */
const snapshotMaxAgeNanos = 1_000_000_000n

/**
 * `read` (finished at `readAtNanos`, by the Clock's monotonic time: a system clock set back during
 * a long wait does not make an old read look fresh) as the deploy's snapshot when it is at most
 * `snapshotMaxAgeNanos` old now; otherwise undefined: the deploy reads its own.
 */
const freshSnapshot = <A>(read: A, readAtNanos: bigint): Effect.Effect<A | undefined> =>
  Effect.map(Clock.monotonicTimeNanos, (now) => (now - readAtNanos <= snapshotMaxAgeNanos ? read : undefined))

/** Entries on a full page of the certificate list (the adapter asks for Key Vault's most, 25). */
const LIST_PAGE_ENTRIES = 25

interface VaultLane {
  readonly budget: VaultBudget
  readonly slots: Permits
}

export interface Reconciler {
  readonly trigger: (name: string, reason: string) => Effect.Effect<void>
  readonly triggerAll: (reason: string) => Effect.Effect<void>
  /** Replace the deployments (SIGHUP); settings other than deployments need a restart. */
  readonly apply: (config: AgentConfig) => Effect.Effect<void>
  readonly deployments: () => ReadonlyArray<Deployment>
  readonly isReady: () => boolean
  /** Whether memory is released after each pass (the process has --expose-gc). */
  readonly releasesMemory: boolean
  /** Stop: interrupt what can be interrupted, wait for deploys past their import (grace period; rollbacks always). */
  readonly shutdown: Effect.Effect<void>
}

/**
 * The facts of a source as the state recorded them when it was last in place (Succeeded or
 * Skipped) under this configuration, if `sourceFingerprint` (the SHA-256 of its bytes now) is
 * the recorded one: the same bytes parse to the same thumbprint and expiry. Undefined otherwise.
 */
export const recordedFacts = (
  record: DeploymentRecord | undefined,
  deployment: Pick<Deployment, "fingerprint" | "formerFingerprints">,
  sourceFingerprint: string,
): SourceFacts | undefined => {
  if (
    record === undefined ||
    (record.outcome !== "Succeeded" && record.outcome !== "Skipped") ||
    !isDeploymentOf(record.configFingerprint, deployment) ||
    record.sourceFingerprint !== sourceFingerprint ||
    // The state file is read without a schema: anything but text (a hand-edited null) is not a fact.
    typeof record.x5t !== "string" ||
    typeof record.notAfter !== "string" ||
    // Written by an agent before the chain's expiry was recorded, or before it followed the issuer
    // path (the leaf's issuer alone): the bytes are parsed once again.
    typeof record.earliestNotAfter !== "string" ||
    record.earliestNotAfterRule !== EARLIEST_NOT_AFTER_RULE
  )
    return undefined
  const notAfter = new Date(record.notAfter)
  const earliestNotAfter = new Date(record.earliestNotAfter)
  if (Number.isNaN(notAfter.getTime()) || Number.isNaN(earliestNotAfter.getTime())) return undefined
  return {
    fingerprint: sourceFingerprint,
    x5t: record.x5t,
    notAfter,
    notAfterText: record.notAfter,
    earliestNotAfter,
    earliestNotAfterText: record.earliestNotAfter,
  }
}

/** Whether two pickup checks are the same endpoint and SNI name (a reload compares them). */
const samePickup = (a: Pickup | undefined, b: Pickup | undefined): boolean =>
  a === undefined || b === undefined
    ? a === b
    : a.host === b.host && a.port === b.port && a.servername === b.servername

/**
 * The fix a held line repeats: the one recorded with the refusal; for a held Rejected recorded by an
 * agent before records kept it, the takeover's, unless the refusal was a create still in progress.
 */
const heldFix = (record: DeploymentRecord): string | undefined => {
  const fix =
    record.fix ??
    (record.outcome === "Rejected" && !record.reason.includes("holds no certificate yet")
      ? notManagedFix
      : undefined)
  // A record an agent wrote before in the deploy's own words says it as the agent does now.
  return fix === undefined ? undefined : agentFix(fix)
}

/**
 * A deploy's fix as the agent's operator acts on it: a takeover is `adopt: true` in the deployment
 * and a reload, not a command's flag.
 */
const agentFix = (fix: string): string =>
  fix.replace(adoptAdvice, "set `adopt: true` in this deployment's target and send the agent SIGHUP")

/** The fixes of a deploy's problems, each once, as one `fix` field of a log line or state record. */
const problemsFix = (problems: ReadonlyArray<{ readonly fix: string }>): string =>
  [...new Set(problems.map((p) => agentFix(p.fix)))].join("; ")

const isHeld = (o: DeployOutcome): boolean =>
  HOLDING.has(o._tag) || (o._tag === "Rejected" && o.problems.some((p) => p.reason === "not_managed"))

const outcomeVersionId = (o: DeployOutcome): string | undefined =>
  o._tag === "Succeeded" || o._tag === "Skipped" || o._tag === "Superseded" || o._tag === "Unverified"
    ? o.versionId
    : o._tag === "RolledBack"
      ? o.rollbackVersionId
      : undefined

/**
 * The start of the reason of a hold on another writer's version met between passes (a Superseded
 * recorded by the agent, not by a deploy): its held lines say so in their own words.
 */
const ANOTHER_WRITER = "another writer wrote version "

/** What to do about such a hold (the record's `fix`, repeated on each held line). */
const anotherWriterFix =
  "keep one writer per certificate: stop the other agent or take the certificate out of its deployments, and deploy by hand only what the agent's source holds (`kvdeploy versions` shows each version's tags and creation time). The hold ends when this deployment's source certificate is renewed (the new one is deployed once), when the vault serves the source again, or with a change of the deployment's source or target configuration (SIGHUP); to put this source back now over the other writer's version, stop the agent, remove this deployment's entry from state.json and start it"

/** Whether a held record is a hold on another writer's version met between passes (above). */
const isAnotherWritersHold = (record: DeploymentRecord): boolean =>
  record.outcome === "Superseded" && record.reason.startsWith(ANOTHER_WRITER)

/**
 * Whether another writer wrote the version the vault serves (`served`) after `own`, the version
 * this deployment last deployed or found in place for the source certificate `sourceX5t`: a
 * version other than its own that does not hold the source certificate. False when there is no
 * such evidence: no own version known, the source changed since (its renewal is deployed as
 * before), the vault serves the source certificate (whoever wrote it), or serves the agent's own
 * version (disabled, its tags changed), or a version created before the agent's own (a lagging
 * replica answering an earlier version: not another writer's, and deployed over as before).
 */
const anotherWritersVersion = (
  own: OwnVersion | undefined,
  served: { readonly versionId: string; readonly x5t: string; readonly createdAt: Date },
  sourceX5t: string,
): boolean =>
  own !== undefined &&
  own.x5t === sourceX5t &&
  // A version with no certificate (a create pending): core's deploy says what to do about it.
  served.x5t !== "" &&
  served.x5t !== sourceX5t &&
  served.versionId !== own.versionId &&
  // Key Vault keeps creation times in whole seconds: a version of the same second that is not ours
  // is the later one (the latest is the last created), as the deploy's verify judges it.
  (own.createdAtMs === undefined || served.createdAt.getTime() >= own.createdAtMs)

export const makeReconciler = (
  initial: AgentConfig,
  state: StateStore,
  agentMetrics: AgentMetrics,
): Effect.Effect<Reconciler, never, Vaults | Metrics | PfxCodec> =>
  Effect.gen(function* () {
    const services = yield* Effect.context<Vaults | Metrics | PfxCodec>()
    const vaults = yield* Vaults
    const metrics = yield* Metrics
    /**
     * The Metrics a run of `d` records through: its expiry series only while `d` is still the
     * configured deployment of its name. A run of a configuration a reload replaced (a renamed
     * target) ends after the reload dropped the old target's series, and must not set it again.
     */
    const metricsFor = (d: Deployment): typeof metrics => ({
      ...metrics,
      certificateExpiry: (certificate, notAfter) =>
        Effect.suspend(() => {
          const slot = slots.get(d.name)
          if (slot?.deployment !== d) return Effect.void
          // Kept in the deployment's state record, for the series after a restart.
          slot.servedNotAfter = notAfter.toISOString()
          return metrics.certificateExpiry(certificate, notAfter)
        }),
      certificateNotServed: (certificate) =>
        Effect.suspend(() => {
          const slot = slots.get(d.name)
          if (slot?.deployment !== d) return Effect.void
          slot.servedNotAfter = null
          // An in-place pass after sets the series again, from the source's facts.
          slot.expiryRecorded = undefined
          return metrics.certificateNotServed(certificate)
        }),
    })
    const codec = yield* PfxCodec
    const materialWorkers = yield* MaterialWorkers
    const settings: AgentSettings = initial.settings
    const global = makePermits(settings.concurrency)
    // Deployments of one vault in progress at once (the rest wait for their lane, holding nothing).
    // Each makes one request at a time, so this also bounds the connections the vault's client keeps
    // open (the Azure SDK's keep-alive agent never closes an idle one itself).
    const perVaultSlots = settings.vaultConcurrency
    const lanes = new Map<string, VaultLane>()
    const slots = new Map<string, Slot>()
    const inFlight = new Map<string, InFlight>()
    let stopping = false
    let ready = false
    // Memory back to the system once a pass is over (with --expose-gc; see idleRelease.ts).
    const gc = exposedGc()
    // The configuration's parse left its garbage (10,000 deployments: the first pass's collection
    // found 540 MB resident, against about 320 MB for the later ones): collected before the first
    // pass, so that the in-pass bound below counts from what the agent holds, not from that.
    gc?.()
    const idle = makeIdleRelease({
      quietMs: 3000,
      // Nothing is started once shutdown began, and what was scheduled before does nothing:
      // no state write or collection after the reconciler stopped (an embedded agent goes on).
      run: (effect) => {
        if (stopping) return
        Effect.runForkWith(services)(Effect.suspend(() => (stopping ? Effect.void : effect)))
      },
      gc,
      gcDuringPass: exposedMajorGc(),
      // The pass's records are written first, so the write's garbage goes with the rest; the vault
      // clients' idle keep-alive connections are closed (tens of KB each, hundreds after a pass).
      before: Effect.andThen(
        state.flush,
        // A debug line: a memory detail with nothing to do about it, and it followed every burst of
        // retries too (KVDEPLOY_AGENT_LOG_LEVEL=debug shows it).
        Effect.flatMap(vaults.releaseIdleConnections, (closed) =>
          closed === 0
            ? Effect.void
            : Effect.logDebug("idle: vault connections closed after the pass").pipe(
                Effect.annotateLogs({ connections: closed }),
              ),
        ),
      ),
      // Bounds the peak of a pass that parses and deploys (a cold pass over 10,000 deployments peaked at
      // ~350 MB with 128 MB, ~500-670 MB with 256 MB, and left less behind: 201 MB idle against 224).
      growthBytes: 128 * 1024 * 1024,
      // And after every 1,000 attempts that parsed or deployed, whatever the resident memory says:
      // glibc reuses the heap that freed native objects leave, so the resident memory stops growing
      // while that heap's high-water mark (which an idle agent keeps resident) still does. A restarted
      // agent's pass (every source parsed once) left 182 MB idle without this and 139-141 MB with it.
      collectEvery: 1000,
    })

    // Synchronous: two deployments of a new vault never get two budgets for it.
    const laneFor = (vaultUrl: string): Effect.Effect<VaultLane> =>
      Effect.sync(() => {
        const existing = lanes.get(vaultUrl)
        if (existing !== undefined) return existing
        const lane = {
          budget: makeVaultBudgetUnsafe(vaultUrl, settings),
          slots: makePermits(perVaultSlots),
        }
        lanes.set(vaultUrl, lane)
        return lane
      })

    const log = (
      d: Deployment,
      decision: string,
      level: "info" | "warn" | "error",
      fields: Record<string, unknown> = {},
    ) =>
      (level === "info"
        ? Effect.logInfo(decision)
        : level === "warn"
          ? Effect.logWarning(decision)
          : Effect.logError(decision)
      ).pipe(
        Effect.annotateLogs({
          deployment: d.name,
          vault: d.target.vaultUrl,
          certificate: d.target.certificateName,
          ...fields,
        }),
      )

    // A pass records about two deployments per millisecond: the same text for the same time.
    let isoAtMs = Number.NaN
    let isoAtText = ""
    const isoAt = (ms: number): string => {
      if (ms !== isoAtMs) {
        isoAtMs = ms
        isoAtText = new Date(ms).toISOString()
      }
      return isoAtText
    }

    /**
     * A record kept as it is (a held outcome) still follows what the vault serves: the value the
     * vault expiry series was set to since, for the restart's series.
     */
    const keepServed = (d: Deployment, previous: DeploymentRecord) => {
      const served = slots.get(d.name)?.servedNotAfter
      if (served === undefined || !isDeploymentOf(previous.configFingerprint, d)) return
      if (served === null) {
        if (previous.servedNotAfter === undefined) return
        const { servedNotAfter: _dropped, ...kept } = previous
        state.set(d.name, kept)
      } else if (previous.servedNotAfter !== served)
        state.set(d.name, { ...previous, servedNotAfter: served })
    }

    /**
     * The version `d` last deployed or found in place: the slot's (this process's, with its creation
     * time when known), else the state record's (Succeeded or Skipped, this configuration).
     */
    const ownVersionOf = (slot: Slot, d: Deployment): OwnVersion | undefined => {
      if (slot.deployment !== d) return undefined
      if (slot.own !== undefined) return slot.own
      const r = state.get(d.name)
      if (
        r === undefined ||
        // A hold on another writer's version keeps the agent's own (a restart during it holds on).
        (r.outcome !== "Succeeded" && r.outcome !== "Skipped" && !isAnotherWritersHold(r)) ||
        !isDeploymentOf(r.configFingerprint, d) ||
        typeof r.x5t !== "string"
      )
        return undefined
      return {
        versionId: typeof r.versionId === "string" ? r.versionId : undefined,
        x5t: r.x5t,
        createdAtMs: undefined,
      }
    }

    const record = (
      d: Deployment,
      fields: Omit<DeploymentRecord, "configFingerprint" | "lastSuccessAt" | "at"> & {
        success: boolean
        atMs: number
        /**
         * Not a decision about the source (a vault that could not be read, a source that could not
         * be read or parsed): a held outcome of this configuration stays recorded instead, so the
         * same source is still held once the vault answers or the files are whole again.
         */
        keepsHeld?: true
      },
    ) => {
      // A deployment removed by a reload while its deploy was in flight: its state record and
      // series were removed with it, and an outcome arriving after must not bring them back.
      const recordedSlot = slots.get(d.name)
      if (recordedSlot === undefined) return
      // Any other outcome than a want of a token ends the run of those (the no-token line sets it again).
      recordedSlot.noTokenTold = false
      const previous = state.get(d.name)
      if (
        fields.keepsHeld === true &&
        previous?.held === true &&
        isDeploymentOf(previous.configFingerprint, d)
      )
        return keepServed(d, previous)
      const at = isoAt(fields.atMs)
      // What the vault served at the last read that told it, for this configuration (kept through
      // attempts that could not read the vault; none once a read found nothing served).
      const served = slots.get(d.name)?.servedNotAfter
      const servedNotAfter =
        served === null
          ? undefined
          : (served ??
            (isDeploymentOf(previous?.configFingerprint, d) ? previous?.servedNotAfter : undefined))
      state.set(d.name, {
        outcome: fields.outcome,
        at,
        reason: fields.reason,
        configFingerprint: d.fingerprint,
        sourceFingerprint: fields.sourceFingerprint,
        x5t: fields.x5t,
        versionId: fields.versionId,
        notAfter: fields.notAfter,
        ...(fields.earliestNotAfter === undefined
          ? {}
          : { earliestNotAfter: fields.earliestNotAfter, earliestNotAfterRule: EARLIEST_NOT_AFTER_RULE }),
        lastSuccessAt: fields.success ? at : previous?.lastSuccessAt,
        held: fields.held,
        ...(servedNotAfter === undefined ? {} : { servedNotAfter }),
        ...(fields.fix === undefined ? {} : { fix: fields.fix }),
      })
      agentMetrics.lastOutcome(d.name, fields.outcome)
      if (fields.success) agentMetrics.lastSuccess(d.name, fields.atMs)
    }

    /**
     * Failed before the vault could be read (no vault access, no token, a read that failed): no
     * decision about the source, so a held outcome of this configuration stays recorded, and so
     * does an Unverified deploy of this source (its retry learnt nothing about the version it
     * imported, which is still unproven, not undone: the record keeps that version and the series
     * keeps saying Unverified).
     */
    const recordUnread = (d: Deployment, facts: SourceFacts, reason: string, atMs: number) => {
      const previous = state.get(d.name)
      if (
        previous?.outcome === "Unverified" &&
        previous.sourceFingerprint === facts.fingerprint &&
        isDeploymentOf(previous.configFingerprint, d)
      )
        return keepServed(d, previous)
      return record(d, {
        outcome: "Failed",
        reason,
        sourceFingerprint: facts.fingerprint,
        x5t: facts.x5t,
        versionId: undefined,
        notAfter: facts.notAfterText,
        earliestNotAfter: facts.earliestNotAfterText,
        held: false,
        success: false,
        atMs,
        keepsHeld: true,
      })
    }

    /** Said once when a read of `d`'s vault succeeds after a run of failed ones (`slot.unread`). */
    const readableAgain = (d: Deployment, slot: Slot) =>
      Effect.suspend(() => {
        const run = slot.unread
        if (run === undefined || slot.deployment !== d) return Effect.void
        slot.unread = undefined
        return Effect.flatMap(Clock.currentTimeMillis, (nowMs) =>
          log(d, "vault readable again", "info", {
            failedReads: run.failures,
            since: isoAt(run.sinceMs),
            outageSeconds: Math.round((nowMs - run.sinceMs) / 1000),
          }),
        )
      })

    const pickupCheck = (d: Deployment, x5t: string) =>
      d.pickup === undefined
        ? Effect.void
        : checkPickup(d.pickup, x5t).pipe(
            Effect.tap((r) =>
              // Only for the configuration that runs: a check of one a reload replaced (its pickup
              // taken out, say) must not set the series again.
              Effect.sync(() => {
                if (slots.get(d.name)?.deployment === d) agentMetrics.pickup(d.name, r.ok)
              }).pipe(
                Effect.andThen(
                  log(
                    d,
                    r.ok
                      ? "pickup: the consumer serves the source certificate"
                      : "pickup: the consumer does not serve the source certificate yet",
                    r.ok ? "info" : "warn",
                    { pickup: `${d.pickup?.host}:${d.pickup?.port}`, detail: r.detail },
                  ),
                ),
              ),
            ),
          )

    /**
     * One reconcile of one deployment. Fails (to be retried) when it did not reach its goal. Answers
     * the thumbprint the consumer's pickup check is to find when the vault serves the source (found
     * in place or deployed) and the deployment has a check: the caller runs it once the attempt's
     * permits are given back.
     */
    const attempt = (
      slot: Slot,
      lane: VaultLane,
      seen: Result.Result<SourceBytes | SourceUnchanged, SourceBroken>,
      reserved: ImportReservation | undefined,
      work: Work,
    ): Effect.Effect<string | undefined, AttemptFailed, Metrics | PfxCodec> =>
      Effect.gen(function* () {
        const d = slot.deployment
        const startedAt = yield* Clock.currentTimeMillis
        const startedAtNanos = yield* Clock.monotonicTimeNanos
        // This attempt's list entry, used once.
        const listed = slot.listed
        slot.listed = undefined
        let bytes = seen
        // The bytes, when only the stamp was checked: read whole now (and stamped again).
        // (Built when needed: a comparison that finds the source in place reads nothing.)
        const readWhole = Effect.suspend(() =>
          Effect.map(Effect.result(readSource(d.source)), (read) => {
            slot.stamp = read._tag === "Success" ? read.success.stamp : undefined
            return read
          }),
        )
        // A restarted agent knows no facts yet: the state has them for the bytes it last found in place
        // (Succeeded or Skipped, this configuration, the same SHA-256), so those are compared without
        // being parsed again. A deploy still parses them (below).
        // Not for a PFX opened with a password from the environment: its value may have changed
        // across the restart, and a restart is where a wrong one should show.
        if (
          slot.facts === undefined &&
          bytes._tag === "Success" &&
          !(d.source._tag === "Pfx" && d.source.passwordEnv !== undefined)
        ) {
          const recorded = recordedFacts(state.get(d.name), d, bytes.success.fingerprint)
          if (recorded !== undefined) {
            slot.facts = recorded
            agentMetrics.expiry(d.name, recorded.earliestNotAfter)
          }
        }
        // 1. The source (read and fingerprinted by the caller); parsed and checked only when it changed.
        let parsed:
          | { readonly material: Parameters<typeof deploy>[0]["material"]; readonly facts: SourceFacts }
          | undefined
        let broken: SourceBroken | undefined
        if (
          bytes._tag === "Success" &&
          bytes.success.files === undefined &&
          (slot.facts === undefined || slot.facts.fingerprint !== bytes.success.fingerprint)
        )
          bytes = yield* readWhole
        if (bytes._tag === "Failure") broken = bytes.failure
        else if (
          bytes.success.files !== undefined &&
          (slot.facts === undefined || slot.facts.fingerprint !== bytes.success.fingerprint)
        ) {
          work.heavy = true
          // A likely deploy (an import permit reserved for it) is checked by the deploy's own codec,
          // on a material worker when there are some (its PFX built there too).
          const checked = yield* (
            reserved === undefined
              ? materialOf(d.source, bytes.success, process.env)
              : materialWorkers.forDeploy(d.source, bytes.success, process.env, codec, d.target.pfxEncoding)
          ).pipe(Effect.result)
          if (checked._tag === "Failure") broken = checked.failure
          else {
            parsed = checked.success
            slot.facts = checked.success.facts
            agentMetrics.expiry(d.name, checked.success.facts.earliestNotAfter)
          }
        }
        /** The source cannot be used: recorded, logged and retried; nothing sent to the vault. */
        const sourceIsBroken = (b: SourceBroken, fingerprint: string | undefined) =>
          Effect.gen(function* () {
            // Read whole and parsed next time: a broken source is not trusted from its stamp or its record.
            slot.stamp = undefined
            slot.facts = undefined
            agentMetrics.sourceBroken(d.name, true)
            record(d, {
              outcome: "SourceBroken",
              reason: b.message,
              sourceFingerprint: fingerprint,
              x5t: undefined,
              versionId: undefined,
              notAfter: undefined,
              held: false,
              success: false,
              atMs: startedAt,
              keepsHeld: true,
            })
            yield* log(d, "source broken: nothing sent to the vault; retrying", "warn", {
              problems: b.problems,
            })
            return yield* new AttemptFailed({
              outcome: "SourceBroken",
              reason: b.message,
              retryAfterMs: undefined,
            })
          })
        if (broken !== undefined)
          return yield* sourceIsBroken(
            broken,
            bytes._tag === "Success" ? bytes.success.fingerprint : undefined,
          )
        agentMetrics.sourceBroken(d.name, false)
        const facts = slot.facts as SourceFacts
        const sourceBytes = bytes._tag === "Success" ? bytes.success : undefined
        // The slot's vault only while it is this deployment's (a reload's pass may have set the new
        // target's while this attempt of the old configuration was on its way).
        const vault =
          (slot.deployment === d ? slot.vault : undefined) ??
          (yield* vaults.forTarget(d.target).pipe(
            Effect.catchTag("VaultAccessUnavailable", (e: VaultAccessUnavailable) =>
              Effect.gen(function* () {
                // Failed, as a vault that cannot be read: the outcome series and the state say so
                // (they kept the last outcome, Skipped say, while no deploy could run).
                recordUnread(d, facts, e.message, yield* Clock.currentTimeMillis)
                yield* log(d, "no vault access", "error", { reason: e.reason, fix: e.fix })
                return yield* new AttemptFailed({
                  outcome: "Failed",
                  reason: e.message,
                  retryAfterMs: undefined,
                })
              }),
            ),
          ))
        // Kept for the deployment it was made for (a reload may have changed the target meanwhile).
        if (slot.deployment === d) slot.vault = vault
        const spend = lane.budget.spend
        // The tags a version in place carries: the same for every attempt of this configuration.
        if (slot.expectedTags === undefined || slot.expectedTags.deployment !== d)
          slot.expectedTags = { deployment: d, tags: forwardTags(d.target.tags, d.certificateId) }
        const expectedTags = slot.expectedTags.tags
        /** In place: a deploy would be Skipped. `read` is the version a read of its own answered. */
        const inPlace = (read: { readonly versionId: string; readonly createdAt: Date } | undefined) =>
          Effect.gen(function* () {
            // A list or a read answered: a run of failed reads is over.
            yield* readableAgain(d, slot)
            const finishedAt = yield* Clock.currentTimeMillis
            yield* metrics.deployAttempt("skipped")
            yield* metrics.idempotentSkip()
            yield* metrics.deployDuration(Number((yield* Clock.monotonicTimeNanos) - startedAtNanos) / 1e9)
            if (slot.expiryRecorded !== facts) {
              yield* metricsFor(d).certificateExpiry(
                { vaultUrl: d.target.vaultUrl, certificateName: d.target.certificateName },
                facts.notAfter,
              )
              slot.expiryRecorded = facts
            }
            const previous = state.get(d.name)
            // A list entry names no version: the one a read of this configuration found serving this
            // certificate (a Succeeded or Skipped record) stays recorded; otherwise none.
            const versionId =
              read?.versionId ??
              (previous !== undefined &&
              isDeploymentOf(previous.configFingerprint, d) &&
              previous.x5t === facts.x5t &&
              (previous.outcome === "Succeeded" || previous.outcome === "Skipped")
                ? previous.versionId
                : undefined)
            // The version found serving the source is this deployment's own from now on (another
            // writer's version met later is judged against it: anotherWritersVersion).
            if (slot.deployment === d)
              slot.own =
                read !== undefined
                  ? { versionId: read.versionId, x5t: facts.x5t, createdAtMs: read.createdAt.getTime() }
                  : slot.own !== undefined && slot.own.x5t === facts.x5t && slot.own.versionId === versionId
                    ? slot.own
                    : { versionId, x5t: facts.x5t, createdAtMs: undefined }
            record(d, {
              outcome: "Skipped",
              reason: "the vault serves the source certificate",
              sourceFingerprint: facts.fingerprint,
              x5t: facts.x5t,
              versionId,
              notAfter: facts.notAfterText,
              earliestNotAfter: facts.earliestNotAfterText,
              held: false,
              success: true,
              atMs: finishedAt,
            })
            if (
              previous?.outcome !== "Skipped" ||
              previous.versionId !== versionId ||
              previous.x5t !== facts.x5t
            )
              yield* log(d, "in place: the vault serves the source certificate", "info", {
                versionId,
                x5t: facts.x5t,
                via: read === undefined ? "list" : "read",
              })
            return d.pickup === undefined ? undefined : facts.x5t
          })
        // 2. Compare with the vault. A fresh entry of this pass's list of the vault that shows the source
        // in place (the rule a read uses, core's servesInPlace) settles it without a request; anything
        // else is read: one request.
        if (
          listed !== undefined &&
          listed.deployment === d &&
          startedAtNanos - listed.atNanos <= listedMaxAgeNanos &&
          servesInPlace(listed.entry, facts.x5t, expectedTags)
        ) {
          work.inPlace = "list"
          return yield* inPlace(undefined)
        }
        const latest = yield* Effect.exit(spend("other", vault.getLatest(d.target.certificateName)))
        // When the read finished: the deploy gets it as its snapshot only while it is fresh (freshSnapshot).
        const latestReadAtNanos = yield* Clock.monotonicTimeNanos
        // The deploy program's own idempotency rule (core's servesInPlace): in place means a deploy would be Skipped.
        if (Exit.isSuccess(latest) && servesInPlace(latest.value, facts.x5t, expectedTags)) {
          work.inPlace = "read"
          return yield* inPlace(latest.value)
        }
        if (Exit.isFailure(latest)) {
          const error = latest.cause.reasons.find((r) => r._tag === "Fail")
          const e = error?._tag === "Fail" ? error.error : undefined
          // A defect in the read (no failure of the vault's): the defect itself goes on, to be said.
          if (e === undefined) return yield* Effect.die(Cause.squash(latest.cause))
          if (e._tag !== "VaultNotFound") {
            // No token (nothing was sent): the identity's problem, not the vault's.
            const noToken = e.unsent === true
            // An attempt of a configuration a reload replaced neither reads nor sets the new one's.
            const current = slot.deployment === d
            const toldAlready = noToken && current && slot.noTokenTold
            const failedAtMs = yield* Clock.currentTimeMillis
            recordUnread(d, facts, e.message, failedAtMs)
            if (current) slot.noTokenTold = noToken
            const fields = { error: e._tag, operation: e.operation, reason: e.message }
            if (noToken) {
              // Said once for a run of attempts that get no token; the identity's lines say the rest.
              if (!toldAlready)
                yield* log(d, "no token for the vault: retrying with backoff", "warn", {
                  ...fields,
                  // A timeout's fix names the setting, as before (the identity's lines say the rest).
                  ...(e.timedOutAfterMs === undefined ? {} : { fix: vaultReadFix(e, d.target.vaultUrl) }),
                })
            } else if (current && slot.unread !== undefined) {
              // Said once for a run of failed reads (1,000 deployments in an outage: 1,000 lines, not
              // 20,000 an hour); each retry's failure is a debug line, and counted in the metrics.
              slot.unread.failures++
              yield* Effect.logDebug("cannot read the vault: still failing, retrying with backoff").pipe(
                Effect.annotateLogs({
                  deployment: d.name,
                  vault: d.target.vaultUrl,
                  certificate: d.target.certificateName,
                  ...fields,
                  failedReads: slot.unread.failures,
                  since: isoAt(slot.unread.sinceMs),
                }),
              )
            } else {
              if (current) slot.unread = { sinceMs: failedAtMs, failures: 1 }
              yield* log(d, "cannot read the vault: retrying with backoff", "warn", {
                ...fields,
                fix: vaultReadFix(e, d.target.vaultUrl),
              })
            }
            return yield* new AttemptFailed({
              outcome: "Failed",
              reason: e.message,
              retryAfterMs: e._tag === "VaultThrottled" ? e.retryAfterMs : undefined,
            })
          }
        }
        // Read (or not found): a token was had, whatever comes next (held, the source changed meanwhile).
        slot.noTokenTold = false
        yield* readableAgain(d, slot)
        // 3. They differ. Held? (an outcome that needs a person, for this very source and configuration)
        const previous = state.get(d.name)
        if (
          previous?.held === true &&
          previous.sourceFingerprint === facts.fingerprint &&
          isDeploymentOf(previous.configFingerprint, d) &&
          // A hold on another writer's version ends when the vault serves the source certificate
          // again, whatever its tags (a person's plain `kvdeploy deploy` of it): deployed with this
          // deployment's tags from here, as any version of the source that is not in place.
          !(isAnotherWritersHold(previous) && Exit.isSuccess(latest) && latest.value.x5t === facts.x5t)
        ) {
          yield* log(
            d,
            isAnotherWritersHold(previous)
              ? "held: another writer's version is served, written after this agent's (Superseded); keep one writer per certificate, or change the source or the configuration to deploy again"
              : `held: the last deploy of this source ended ${previous.outcome}; change the source or the configuration to deploy again`,
            "warn",
            {
              outcome: previous.outcome,
              reason: previous.reason,
              ...(heldFix(previous) === undefined ? {} : { fix: heldFix(previous) }),
            },
          )
          // The expiry series says what the vault serves: after a Superseded, another writer's version.
          if (Exit.isSuccess(latest) && latest.value.expiresAt !== undefined) {
            yield* metricsFor(d).certificateExpiry(
              { vaultUrl: d.target.vaultUrl, certificateName: d.target.certificateName },
              latest.value.expiresAt,
            )
            slot.expiryRecorded = undefined
            keepServed(d, previous)
          } else if (Exit.isFailure(latest)) {
            // Not found (any other failure returned above): the vault serves nothing under the name.
            yield* metricsFor(d).certificateNotServed({
              vaultUrl: d.target.vaultUrl,
              certificateName: d.target.certificateName,
            })
            keepServed(d, previous)
          }
          agentMetrics.lastOutcome(d.name, previous.outcome)
          return
        }
        // 4. Deploy (core's state machine), with the snapshot just read while it is fresh.
        work.heavy = true
        // The deploy sets the expiry series itself (a rollback sets the restored certificate's):
        // the next pass that finds the source in place must set it again.
        slot.expiryRecorded = undefined
        if (parsed === undefined && sourceBytes !== undefined) {
          let whole: SourceBytes | undefined = sourceBytes.files === undefined ? undefined : sourceBytes
          if (whole === undefined) {
            const read = yield* readWhole
            // Changed since the stamp was checked: this pass's comparison was about other bytes.
            if (read._tag === "Failure" || read.success.fingerprint !== facts.fingerprint) {
              yield* log(
                d,
                "source changed during the reconcile: nothing sent to the vault; retrying",
                "warn",
                {
                  problems:
                    read._tag === "Failure"
                      ? read.failure.problems
                      : ["the files differ from the ones compared"],
                },
              )
              return yield* new AttemptFailed({
                outcome: "SourceBroken",
                reason: "the source changed during the reconcile",
                retryAfterMs: undefined,
              })
            }
            whole = read.success
          }
          const again = yield* Effect.result(
            materialWorkers.forDeploy(d.source, whole, process.env, codec, d.target.pfxEncoding),
          )
          // Facts taken from the state (a restart) meet a parse here for the first time.
          if (again._tag === "Failure") return yield* sourceIsBroken(again.failure, whole.fingerprint)
          if (
            again.success.facts.x5t !== facts.x5t ||
            again.success.facts.notAfterText !== facts.notAfterText ||
            again.success.facts.earliestNotAfterText !== facts.earliestNotAfterText
          ) {
            slot.facts = again.success.facts
            agentMetrics.expiry(d.name, again.success.facts.earliestNotAfter)
            yield* log(
              d,
              "the source's certificate is not the recorded one: nothing sent to the vault; comparing again",
              "warn",
              { recordedX5t: facts.x5t, x5t: again.success.facts.x5t },
            )
            return yield* new AttemptFailed({
              outcome: "SourceBroken",
              reason: "the source's certificate is not the one its state record names",
              retryAfterMs: undefined,
            })
          }
          parsed = again.success
        }
        if (parsed === undefined)
          return yield* new AttemptFailed({
            outcome: "SourceBroken",
            reason: "the source could not be read again",
            retryAfterMs: undefined,
          })
        // 4a. Another writer's version, written since this deployment last deployed or found its source
        // in place (another agent, a person's deploy or restore), and not the source certificate: held
        // as after a Superseded deploy, nothing imported. Judged once the files are known to be the ones
        // compared (a renewal landing meanwhile is deployed, as before), the source parsed and checked.
        const own = ownVersionOf(slot, d)
        if (Exit.isSuccess(latest) && anotherWritersVersion(own, latest.value, facts.x5t)) {
          const served = latest.value
          const ownText = own?.versionId === undefined ? "" : ` ${own.versionId}`
          const reason = `${ANOTHER_WRITER}${served.versionId} (x5t ${served.x5t}) after this agent's version${ownText} of the source certificate (another agent, a person's deploy or restore): not imported over it${served.enabled ? "" : "; it is disabled, so a client that reads the certificate's latest version gets none until it is enabled or another version is imported"}`
          // The expiry series says what the vault serves: the other writer's version.
          if (served.expiresAt !== undefined)
            yield* metricsFor(d).certificateExpiry(
              { vaultUrl: d.target.vaultUrl, certificateName: d.target.certificateName },
              served.expiresAt,
            )
          slot.expiryRecorded = undefined
          yield* metrics.deployAttempt("superseded")
          yield* metrics.deployDuration(Number((yield* Clock.monotonicTimeNanos) - startedAtNanos) / 1e9)
          record(d, {
            outcome: "Superseded",
            reason,
            sourceFingerprint: facts.fingerprint,
            x5t: facts.x5t,
            versionId: own?.versionId,
            notAfter: facts.notAfterText,
            earliestNotAfter: facts.earliestNotAfterText,
            held: true,
            fix: anotherWriterFix,
            success: false,
            atMs: yield* Clock.currentTimeMillis,
          })
          yield* log(
            d,
            "superseded: another writer's version is served, written after this agent's; held, nothing imported",
            "warn",
            {
              outcome: "Superseded",
              reason,
              servedVersionId: served.versionId,
              servedX5t: served.x5t,
              ...(own?.versionId === undefined ? {} : { ownVersionId: own.versionId }),
              newX5t: facts.x5t,
              fix: anotherWriterFix,
            },
          )
          return undefined
        }
        const material = parsed.material
        // When the vault created each version the deploy's requests answered (its import, its reads):
        // the creation time of the version it leaves in place, for `slot.own`.
        const createdAtOf = new Map<string, number>()
        const noteCreated = <E>(read: Effect.Effect<VaultVersion, E>) =>
          Effect.tap(read, (v) => Effect.sync(() => createdAtOf.set(v.versionId, v.createdAt.getTime())))
        /**
         * The deploy (core's state machine) on the import permit `importPermit`, with the read
         * `latest` as its snapshot when it is still one when the deploy starts (freshSnapshot: at
         * most `snapshotMaxAgeNanos` old, whatever held it up: the permit's wait, a parse on a busy
         * material worker). Interruptible until its first write (core's
         * `interruptibleUntilWritten`: the deploy runs in a fiber of its own, its forked snapshot read
         * included, which an interruption before the import stops); from the import on it runs to its
         * end, rollback included, and its outcome is recorded.
         */
        const deployOn = (importPermit: ImportReservation) => {
          let committed = false
          // The rollback's first call (its read of the previous version's PFX, or its import) is said
          // at once: an agent killed during a rollback leaves this line, where the deploy's own line
          // would only come at its end.
          let rollbackSaid = false
          const rollingBack = (fields: Record<string, unknown>) =>
            Effect.suspend(() => {
              if (rollbackSaid) return Effect.void
              rollbackSaid = true
              return log(d, "rolling back: the verify did not prove the import", "warn", fields)
            })
          // Set when the deploy starts (below), taken by its first read of the latest version.
          let primed: typeof latest | undefined
          const commit = (kind: InFlight) =>
            Effect.sync(() => {
              inFlight.set(d.name, committed && kind === "committed" ? "rolling-back" : kind)
              committed = true
            })
          const decorated: Vault["Service"] = {
            getLatest: (name) =>
              Effect.suspend(() => {
                const p = primed
                primed = undefined
                return noteCreated(p === undefined ? spend("other", vault.getLatest(name)) : p)
              }),
            getVersion: (name, v) => noteCreated(spend("other", vault.getVersion(name, v))),
            listVersions: (name) => spend("other", vault.listVersions(name)),
            importVersion: (request) => {
              // A rollback's import names the version it rolls back.
              const failed = request.tags[ROLLBACK_OF_TAG]
              return Effect.andThen(
                Effect.andThen(
                  commit("committed"),
                  failed === undefined ? Effect.void : rollingBack({ failedVersionId: failed }),
                ),
                noteCreated(lane.budget.spendReserved(importPermit, vault.importVersion(request))),
              )
            },
            getVersionSecret: (name, v) =>
              Effect.andThen(
                Effect.andThen(commit("rolling-back"), rollingBack({ previousVersionId: v })),
                spend("other", vault.getVersionSecret(name, v)),
              ),
            getDeleted: (name) => spend("other", vault.getDeleted(name)),
            recoverDeleted: (name) =>
              Effect.andThen(commit("committed"), spend("other", vault.recoverDeleted(name))),
          }
          // The deploy's audit record, said once its outcome is recorded (below): a held outcome is
          // written to the state file first, so an agent killed right after the line keeps the hold.
          let audited: AuditRecord | undefined
          const audit = AuditLog.of({
            record: (r: AuditRecord) =>
              Effect.sync(() => {
                audited = r
              }),
          })
          const sayAudited = Effect.suspend(() => {
            const r = audited
            audited = undefined
            return r === undefined
              ? Effect.void
              : log(d, `deploy: ${r.outcome}`, r.exitCode === 0 ? "info" : "warn", {
                  outcome: r.outcome,
                  // The call whose error ended a Failed deploy, or an Unverified or RollbackFailed one, as every
                  // vault error's line says it (and the CLI's --json); none when no call ended it.
                  ...(r.step === undefined ? {} : { step: r.step }),
                  ...(r.error === undefined ? {} : { error: r.error }),
                  ...(r.operation === undefined ? {} : { operation: r.operation }),
                  reason: r.reason,
                  previousVersionId: r.previousVersionId,
                  versionId: r.versionId,
                  rollbackVersionId: r.rollbackVersionId,
                  newX5t: r.newX5t,
                  adopted: r.adopted,
                  ...(r.recovered === undefined ? {} : { recovered: r.recovered }),
                  // What the import wrote to the secret's content type (kept, changed, new; restored by a rollback).
                  ...(r.contentType === undefined ? {} : { contentType: r.contentType }),
                  vaultCalls: r.vaultCalls,
                  durationMs: r.durationMs,
                  decisions: r.decisions,
                  ...(r.problems.length > 0
                    ? {
                        problems: r.problems.map((p) => `${p.field}: ${p.message}`),
                        fix: problemsFix(r.problems),
                      }
                    : {}),
                  ...(r.warnings === undefined
                    ? {}
                    : { warnings: r.warnings.map((w) => `${w.field}: ${w.message}`) }),
                })
          })
          return Effect.flatMap(freshSnapshot(latest, latestReadAtNanos), (snapshot) => {
            primed = snapshot
            inFlight.set(d.name, "deploying")
            return interruptibleUntilWritten(
              (guarded) =>
                deploy({
                  target: d.target,
                  material,
                  certificateId: d.certificateId,
                  options: { adopt: d.adopt },
                }).pipe(
                  Effect.provideService(Vault, guarded),
                  Effect.provideService(Metrics, metricsFor(d)),
                  Effect.provideService(AuditLog, audit),
                  // Recorded in the deploy's own fiber: a deploy finished during shutdown is in the state file.
                  Effect.tap((outcome) =>
                    Effect.flatMap(Clock.currentTimeMillis, (finishedAt) => {
                      record(d, {
                        outcome: outcome._tag,
                        reason: outcome.reason,
                        sourceFingerprint: facts.fingerprint,
                        x5t: facts.x5t,
                        versionId: outcomeVersionId(outcome),
                        notAfter: facts.notAfterText,
                        earliestNotAfter: facts.earliestNotAfterText,
                        held: isHeld(outcome),
                        // A held refusal's fix (a takeover: adopt; a create in progress: its operation).
                        ...(outcome._tag === "Rejected" && isHeld(outcome)
                          ? { fix: problemsFix(outcome.problems) }
                          : {}),
                        success: outcome._tag === "Succeeded" || outcome._tag === "Skipped",
                        atMs: finishedAt,
                      })
                      // A hold after a write is written at once, not with the next periodic write: an
                      // agent killed before that would deploy the rolled-back source again after its
                      // restart, or take a RollbackFailed's version for its own. (A refused takeover
                      // is found again by the restarted agent's first deploy: hundreds of them at a
                      // first start are left to the periodic write, not a write each.)
                      return HOLDING.has(outcome._tag) ? state.flush : Effect.void
                    }),
                  ),
                  Effect.ensuring(sayAudited),
                ),
              decorated,
            )
          }).pipe(Effect.ensuring(Effect.sync(() => inFlight.delete(d.name))))
        }
        // The import permit: reserved before this deploy took its global permit (the likely case), or
        // now, given back when no import used it (a deploy refused, skipped, failed or stopped before
        // its import). Its wait can be interrupted (a reload, shutdown).
        // Either way the deploy reads its own snapshot when the one read above is no longer fresh.
        const outcome: DeployOutcome = yield* reserved !== undefined
          ? deployOn(reserved)
          : Effect.acquireUseRelease(
              Effect.interruptible(lane.budget.reserveImport),
              deployOn,
              (reservation) => lane.budget.releaseUnused(reservation),
            )
        const success = outcome._tag === "Succeeded" || outcome._tag === "Skipped"
        // The version it leaves serving the source is this deployment's own; after any other outcome
        // its state record says what it knows (none, as before this deploy).
        if (slot.deployment === d)
          slot.own = success
            ? {
                versionId: outcome.versionId,
                x5t: facts.x5t,
                createdAtMs: createdAtOf.get(outcome.versionId),
              }
            : undefined
        const held = isHeld(outcome)
        if (success) return d.pickup === undefined ? undefined : facts.x5t
        if (held) return undefined
        return yield* new AttemptFailed({
          outcome: outcome._tag,
          reason: outcome.reason,
          retryAfterMs: undefined,
        })
      })

    const retryPolicy = {
      schedule: backoffSchedule(settings.backoffBaseMs, settings.backoffMaxMs),
      while: () => !stopping,
    }
    // A trigger that came during an attempt (`again`: a change of its files, a reload) ends the
    // retries: the run starts again at once with a fresh backoff, instead of after the next delay.
    const retrying = <A, R>(slot: Slot, first: AttemptFailed, once: Effect.Effect<A, AttemptFailed, R>) =>
      retryAfterFirstFailure(first, once, {
        schedule: retryPolicy.schedule,
        while: () => retryPolicy.while() && !slot.again,
      })

    // Deployments not attempted yet: a count, not a scan of every slot after each attempt (a cold
    // pass over 10,000 deployments scanned 10,000 slots 10,000 times).
    let unattempted = 0
    const markAttempted = (slot: Slot) =>
      Effect.sync(() => {
        if (slot.attempted) return
        slot.attempted = true
        unattempted--
        if (!ready && unattempted <= 0) {
          ready = true
          agentMetrics.ready(true)
        }
      })

    const runSlot = (slot: Slot, generation: number): Effect.Effect<void, never, Metrics | PfxCodec> =>
      Effect.gen(function* () {
        do {
          slot.again = false
          const cause = slot.cause
          const lane = yield* laneFor(slot.deployment.target.vaultUrl)
          // The vault's lane first: a deployment holds nothing else (and little memory) while it waits
          // for it, so a fleet triggered at once keeps only a few deployments per vault in progress.
          /**
           * One attempt, its lines saying what started it. The pickup check of a certificate found in
           * place or deployed runs after the attempt gives its permits back (a consumer that does not
           * answer holds no other vault's deploys for its timeout); the attempt's accounting (its
           * phase, readiness, its pass) waits for it, so a pass is over once its checks are. The
           * slot stays "attempting" through the check: a trigger meanwhile runs it again after, and a
           * reload that changes it or a shutdown interrupts the check with the run.
           */
          const onceAs = (trigger: string) =>
            Effect.suspend(() => {
              // Set once the attempt held its permits (the accounting below is for such an attempt only).
              let entered = false
              // Whether the attempt parsed or deployed (the in-pass collections are for those).
              const work: Work = { heavy: false }
              // The pass this attempt answers for (taken when it begins).
              let pass: Pass | undefined
              return lane.slots
                .withPermit(
                  Effect.gen(function* () {
                    const d = slot.deployment
                    // Read the source first (cheap): it tells whether a deploy is likely, and so whether to
                    // wait for an import permit now, before holding a global permit. Files found exactly as
                    // the last whole read stamped them are not read again (one stat each).
                    const stamp = slot.stamp
                    const bytes: Result.Result<SourceBytes | SourceUnchanged, SourceBroken> =
                      stamp !== undefined && unchangedSince(stamp, Date.now())
                        ? Result.succeed({ fingerprint: stamp.fingerprint, files: undefined, stamp })
                        : yield* readSource(d.source).pipe(Effect.result)
                    slot.stamp = bytes._tag === "Success" ? bytes.success.stamp : undefined
                    const recorded = state.get(d.name)
                    const inPlace =
                      recorded !== undefined &&
                      isDeploymentOf(recorded.configFingerprint, d) &&
                      bytes._tag === "Success" &&
                      recorded.sourceFingerprint === bytes.success.fingerprint &&
                      (recorded.outcome === "Succeeded" || recorded.outcome === "Skipped" || recorded.held)
                    const likelyDeploy = bytes._tag === "Success" && !inPlace
                    const run = (
                      reservation: ImportReservation | undefined,
                    ): Effect.Effect<PickupDue | undefined, AttemptFailed, Metrics | PfxCodec> =>
                      Effect.andThen(
                        lane.budget.awaitGate(likelyDeploy),
                        global.withPermit(
                          Effect.suspend(() => {
                            let begun = false
                            return Effect.suspend(() => {
                              entered = true
                              // A reload changed the deployment while this one waited for its permits: the
                              // source read above is the old configuration's. Read again for the new one.
                              if (slot.deployment !== d) {
                                slot.again = true
                                return Effect.succeed(undefined)
                              }
                              if (slot.generation === generation) slot.phase = "attempting"
                              begun = true
                              slot.touchedSeq = ++attemptSeq
                              slot.inAttempt = true
                              pass = slot.pass
                              slot.pass = undefined
                              idle.begin()
                              return Effect.annotateLogs(
                                Effect.map(attempt(slot, lane, bytes, reservation, work), (x5t) =>
                                  x5t === undefined ? undefined : { deployment: d, x5t },
                                ),
                                "trigger",
                                trigger,
                              )
                            }).pipe(
                              Effect.ensuring(
                                Effect.sync(() => {
                                  if (begun) {
                                    slot.touchedSeq = ++attemptSeq
                                    slot.inAttempt = false
                                    idle.end(!work.heavy)
                                  }
                                }),
                              ),
                            )
                          }),
                        ),
                      )
                    // No import permit to hold (the likely case of a pass that changes nothing): run as is.
                    if (!likelyDeploy) return yield* run(undefined)
                    // The wait for the permit can be interrupted (a reload, shutdown); a permit taken is given back
                    // when no import used it.
                    return yield* Effect.acquireUseRelease(
                      Effect.interruptible(lane.budget.reserveImport),
                      run,
                      (reservation) => lane.budget.releaseUnused(reservation),
                    )
                  }),
                )
                .pipe(
                  // Every permit given back: the consumer's check.
                  Effect.flatMap((due) =>
                    due === undefined
                      ? Effect.void
                      : Effect.annotateLogs(pickupCheck(due.deployment, due.x5t), "trigger", trigger),
                  ),
                  Effect.ensuring(
                    Effect.suspend(() =>
                      entered
                        ? Effect.andThen(
                            Effect.sync(() => {
                              if (slot.generation === generation) slot.phase = "waiting"
                            }),
                            Effect.andThen(
                              markAttempted(slot),
                              Effect.suspend(() => (pass === undefined ? Effect.void : passDone(pass, work))),
                            ),
                          )
                        : Effect.void,
                    ),
                  ),
                )
            })
          // The run's lines say what started it (a trigger during the run starts the next one).
          yield* Effect.catch(onceAs(cause ?? "start"), (first) =>
            Effect.andThen(
              Effect.sync(() => {
                slot.backingOff = true
              }),
              retrying(slot, first, onceAs("retry")),
            ),
          ).pipe(
            Effect.ensuring(
              Effect.sync(() => {
                slot.backingOff = false
              }),
            ),
            Effect.ignore,
          )
        } while (slot.again && !stopping)
      }).pipe(
        // A defect (a bug here or in a library) ends this run of the deployment: said, not swallowed
        // by the forked fiber; the next pass or trigger starts it again.
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.failCause(cause)
            : log(slot.deployment, "deployment stopped by an internal error", "error", {
                reason: internalErrorMessage(cause),
                fix: internalErrorFix,
              }),
        ),
        Effect.ensuring(
          Effect.sync(() => {
            if (slot.generation === generation) {
              slot.phase = "idle"
              slot.fiber = undefined
            }
          }),
        ),
      )

    const start = (slot: Slot): void => {
      const previous = slot.fiber
      const generation = ++slot.generation
      slot.phase = "waiting"
      slot.fiber = Effect.runForkWith(services)(
        previous === undefined
          ? runSlot(slot, generation)
          : Effect.andThen(Fiber.interrupt(previous), runSlot(slot, generation)),
      )
    }

    const trigger = (name: string, reason: string): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (stopping) return Effect.void
        const slot = slots.get(name)
        if (slot === undefined) return Effect.void
        // A watched file changed: read it whole, whatever its stamp says.
        if (reason === "file change") slot.stamp = undefined
        // An interval pass leaves a deployment retrying to its backoff, and does not count it: starting
        // it again would start its backoff again too, so that a failing deployment never waited longer
        // than an interval, and every failing deployment retried in step after each pass. The same for
        // a deployment in an attempt (the attempt compares anyway): marked to run again, it left its
        // backoff at once when the attempt failed, so an attempt longer than the interval (a slow
        // identity endpoint) was retried back to back. A change of its files, a reload or a restart
        // still starts it at once.
        if (reason === "interval" && (slot.backingOff || slot.phase === "attempting")) {
          const pass = slot.pass
          slot.pass = undefined
          return pass === undefined ? Effect.void : passDone(pass, undefined)
        }
        slot.cause = reason
        if (slot.phase === "attempting") slot.again = true
        else start(slot)
        return Effect.void
      })

    /**
     * One deployment's part of `pass` is over (its first attempt ended, or it left the pass:
     * removed, left to its backoff, or taken by the next pass before its attempt: `superseded`).
     */
    const passDone = (pass: Pass, work: Work | undefined, superseded = false): Effect.Effect<void> =>
      Clock.clockWith((clock) => {
        if (work?.inPlace === "list") pass.listedInPlace++
        else if (work?.inPlace === "read") pass.readInPlace++
        if (superseded) pass.superseded++
        pass.remaining--
        if (pass.remaining !== 0) return Effect.void
        // The pass held off the idle release (below): now it may run.
        idle.end(true)
        const endedAt = clock.currentTimeMillisUnsafe()
        const durationMs = Number((clock.monotonicTimeNanosUnsafe() - pass.startedAtNanos) / 1_000_000n)
        // A pass the next one overtook did not get through its deployments (a vault holding them back
        // longer than an interval): it is not an ended pass, for the log or the last-pass gauges, so
        // that the alert on passes that stopped ending can fire.
        if (pass.superseded > 0)
          return Effect.logWarning("pass overtaken: the next pass began before it got through").pipe(
            Effect.annotateLogs({
              reason: pass.reason,
              deployments: pass.deployments,
              notAttempted: pass.superseded,
              durationMs,
              overtakenBy: pass.overtakenBy,
              fix:
                pass.overtakenBy === "reload"
                  ? "a reload (SIGHUP) began the next pass, which took over the deployments this one had not reached: nothing to fix, unless reloads keep coming faster than a pass ends"
                  : "deployments waited longer than an interval (for their vault's Retry-After, budget or permits): see their log lines; a longer reconcile_interval_seconds gives a pass time to finish",
            }),
          )
        agentMetrics.passOver(pass.reason, endedAt, durationMs, pass.listedInPlace)
        return Effect.logInfo("pass over").pipe(
          Effect.annotateLogs({
            reason: pass.reason,
            deployments: pass.deployments,
            inPlace: pass.listedInPlace + pass.readInPlace,
            inPlaceFromList: pass.listedInPlace,
            other: pass.deployments - pass.listedInPlace - pass.readInPlace,
            listPages: pass.listPages,
            durationMs,
          }),
        )
      })

    // Attempt beginnings and ends so far: a list page is not given to a deployment that had an attempt
    // running at any time since the page was asked for: that attempt may have written what the page
    // does not show.
    let attemptSeq = 0
    // Vaults whose list was refused (403): each deployment reads its own certificate until the next reload.
    const listRefused = new Set<Vault["Service"]>()
    // Vault URLs whose last list failed for want of a token, said once: the identity's lines follow the outage.
    const listNoTokenTold = new Set<string>()
    // Lists in progress, interrupted on shutdown.
    const listing = new Set<Fiber.Fiber<void>>()

    /**
     * List the vault's certificates for `group` (its deployments in this pass) and give each
     * deployment its entry. Stops once the pages read reach half the group (the vault holds many
     * more certificates than the agent deploys to it, or answers short pages: reads would cost
     * less; the budget counts requests, whatever a page holds). A failed page ends
     * the list; entries already read are used, the rest read their own.
     */
    const listVault = (
      vault: Vault["Service"],
      list: NonNullable<Vault["Service"]["listCertificates"]>,
      group: ReadonlyArray<Listing>,
      pass: Pass,
    ): Effect.Effect<void> =>
      Effect.gen(function* () {
        const first = group[0]
        if (first === undefined) return
        const d = first.deployment
        const lane = yield* laneFor(d.target.vaultUrl)
        // Each slot under the certificate name of the deployment it was grouped for (the one whose
        // target is this vault; Key Vault's names are case-insensitive).
        const wanted = new Map<string, Array<Listing>>()
        for (const listing of group) {
          const key = listing.deployment.target.certificateName.toLowerCase()
          const same = wanted.get(key)
          if (same === undefined) wanted.set(key, [listing])
          else same.push(listing)
        }
        const maxPages = Math.max(1, Math.ceil(group.length / 2))
        let continuation: string | undefined
        let pages = 0
        let found = 0
        // Every entry the pages answered (any writer's): fewer than 25 a page means short pages.
        let entries = 0
        do {
          const askedAt = attemptSeq
          const page = yield* Effect.result(lane.budget.spend("other", list(continuation)))
          if (page._tag === "Failure") {
            const e = page.failure
            // Refused for want of the list permission (not a token or firewall refusal: those end this list only).
            const refused = e._tag === "VaultForbidden" && e.refusal === "permission"
            if (refused) listRefused.add(vault)
            // No token (nothing was sent): said at the first such list of the vault, not at every pass.
            const noToken = wasUnsent(e)
            const toldAlready = noToken && listNoTokenTold.has(d.target.vaultUrl)
            if (noToken) listNoTokenTold.add(d.target.vaultUrl)
            else listNoTokenTold.delete(d.target.vaultUrl)
            if (toldAlready) break
            // A problem of the vault, not of one deployment: logged with the vault and how many
            // deployments it concerns (no deployment field, so `select(.deployment)` leaves it out).
            yield* Effect.logWarning(
              refused
                ? "vault list refused: each deployment reads its own certificate until the next reload (SIGHUP)"
                : "vault list failed: the deployments not listed read their own certificate",
            ).pipe(
              Effect.annotateLogs({
                vault: d.target.vaultUrl,
                deployments: group.length,
                error: e._tag,
                operation: e.operation,
                reason: e.message,
                ...(refused
                  ? {
                      fix: "grant the agent's identity certificates/list (RBAC: Key Vault Certificate User), or set agent.vault_list_min_deployments: 0",
                    }
                  : {}),
              }),
            )
            break
          }
          pages++
          pass.listPages++
          listNoTokenTold.delete(d.target.vaultUrl)
          // Only the entries of certificates a deployment of this pass wants: another writer's (or one no
          // deployment uses any more) concern no deployment, and are not named.
          const unusable = (page.success.unusable ?? []).filter((u) => wanted.has(u.name.toLowerCase()))
          if (unusable.length > 0)
            // Their deployments are not listed: each reads its own certificate, as when it is on no page.
            yield* Effect.logWarning(
              "vault list: entries the vault answered without their facts; their deployments read their own certificate",
            ).pipe(
              Effect.annotateLogs({
                vault: d.target.vaultUrl,
                entries: unusable.slice(0, 20).map((u) => `${u.name}: ${u.detail}`),
                fix: "Key Vault sends these facts: check what stands between the agent and the vault (a proxy, an API gateway)",
              }),
            )
          entries += page.success.certificates.length + (page.success.unusable?.length ?? 0)
          const atNanos = yield* Clock.monotonicTimeNanos
          for (const entry of page.success.certificates) {
            const slotsOf = wanted.get(entry.name.toLowerCase())
            if (slotsOf === undefined) continue
            for (const { slot, deployment } of slotsOf) {
              // Only for the deployment still configured, with no attempt running now or at any time since
              // the page was asked for (it may have written what the page does not show).
              if (
                slot.deployment !== deployment ||
                slots.get(deployment.name) !== slot ||
                slot.inAttempt ||
                slot.touchedSeq > askedAt
              )
                continue
              slot.listed = { entry, atNanos, deployment }
              found++
            }
          }
          continuation = page.success.continuation
        } while (continuation !== undefined && pages < maxPages)
        // Stopped at the page budget, which counts requests (a page costs one, as a read does), not
        // entries: a vault that answers short or empty pages (Key Vault may: Azure/azure-sdk-for-go#10711)
        // reaches it sooner. Either way the deployments not listed read their own certificate.
        if (continuation !== undefined)
          yield* Effect.logInfo(
            entries < pages * LIST_PAGE_ENTRIES
              ? "vault list stopped early: the vault answered short pages, and more would cost more requests than the deployments not listed reading their own certificate"
              : "vault list stopped early: it holds many more certificates than are deployed to it; the deployments not listed read their own certificate",
          ).pipe(
            Effect.annotateLogs({
              vault: d.target.vaultUrl,
              pages,
              entries,
              found,
              deployments: group.length,
            }),
          )
      })

    const triggerAll = (reason: string) =>
      Clock.clockWith((clock) => {
        if (stopping) return Effect.void
        // A reload (SIGHUP) tries refused lists again: a grant may have been made since.
        if (reason === "reload") listRefused.clear()
        const all = [...slots.values()]
        const pass: Pass = {
          reason,
          startedAtNanos: clock.monotonicTimeNanosUnsafe(),
          remaining: all.length,
          deployments: all.length,
          listedInPlace: 0,
          readInPlace: 0,
          listPages: 0,
          superseded: 0,
        }
        // Every deployment joins the pass here, in one synchronous step: nothing (a reload's apply)
        // runs between taking the list of deployments and joining them, so each one the pass counts
        // either ends its part or leaves it (apply ends the part of a deployment it removes).
        const left: Array<Pass> = []
        for (const slot of all) {
          if (slot.pass !== undefined) left.push(slot.pass)
          slot.pass = pass
        }
        // A pass is not over while its deployments wait (for their vault's budget, its gate, a permit):
        // no idle release (the state write, closing the vault connections, a full collection) until it
        // is. A cold pass under Key Vault's windows deploys in bursts, one per window; releasing between
        // them closed every connection (a TLS handshake each, both sides, in the next burst) and ran a
        // full collection over every deployment's state, once per window.
        if (all.length > 0) idle.begin()
        return Effect.gen(function* () {
          // The passes they were waiting for go on without them.
          for (const before of left) {
            before.overtakenBy ??= reason
            yield* passDone(before, undefined, true)
          }
          // Deployments by vault client (a vault and a credential); the ones in a group large enough are
          // triggered once their vault is listed, the others at once.
          const groups = new Map<Vault["Service"], Array<Listing>>()
          const now: Array<Slot> = []
          for (const slot of all) {
            const d = slot.deployment
            let vault = settings.vaultListMinDeployments === 0 ? undefined : slot.vault
            if (vault === undefined && settings.vaultListMinDeployments > 0) {
              // A vault that cannot be made is left to the attempt, which reports why.
              const made = yield* Effect.option(vaults.forTarget(d.target))
              if (made._tag === "Some") vault = made.value
            }
            if (
              vault === undefined ||
              vault.listCertificates === undefined ||
              listRefused.has(vault) ||
              slot.deployment !== d
            ) {
              now.push(slot)
              continue
            }
            slot.vault = vault
            const group = groups.get(vault)
            if (group === undefined) groups.set(vault, [{ slot, deployment: d }])
            else group.push({ slot, deployment: d })
          }
          for (const [vault, group] of groups) {
            if (group.length < settings.vaultListMinDeployments) {
              for (const { slot } of group) now.push(slot)
              groups.delete(vault)
            }
          }
          for (const slot of now) yield* trigger(slot.deployment.name, reason)
          for (const [vault, group] of groups) {
            const list = vault.listCertificates
            // Shutdown may have begun while the vaults were looked up: no list after it.
            if (list === undefined || stopping) continue
            const fiber = Effect.runForkWith(services)(
              listVault(vault, list, group, pass).pipe(
                Effect.ensuring(
                  Effect.forEach(group, ({ slot }) => trigger(slot.deployment.name, reason), {
                    discard: true,
                  }),
                ),
              ),
            )
            listing.add(fiber)
            fiber.addObserver(() => listing.delete(fiber))
          }
        })
      })

    /**
     * The deployment's state record, with the fingerprint the deployment has now when an agent
     * before wrote it with another for the same configuration (formerFingerprints: `pickup`
     * included, or the host's collation): from then on every match (a hold above all) holds by
     * today's fingerprint, so a pickup check changed after the upgrade, or a restart under another
     * locale, keeps a hold, as it does for a record written since.
     */
    const adoptedRecord = (d: Deployment) => {
      const recorded = state.get(d.name)
      if (
        recorded === undefined ||
        d.formerFingerprints === undefined ||
        recorded.configFingerprint === undefined ||
        !d.formerFingerprints.includes(recorded.configFingerprint)
      )
        return recorded
      const adopted = { ...recorded, configFingerprint: d.fingerprint }
      state.set(d.name, adopted)
      return adopted
    }

    const addSlot = (d: Deployment) => {
      const recorded = adoptedRecord(d)
      unattempted++
      slots.set(d.name, {
        deployment: d,
        phase: "idle",
        again: false,
        backingOff: false,
        cause: undefined,
        generation: 0,
        fiber: undefined,
        attempted: false,
        facts: undefined,
        stamp: undefined,
        vault: undefined,
        expiryRecorded: undefined,
        servedNotAfter: undefined,
        expectedTags: undefined,
        listed: undefined,
        touchedSeq: 0,
        inAttempt: false,
        pass: undefined,
        noTokenTold: false,
        unread: undefined,
        own: undefined,
      })
      if (recorded?.lastSuccessAt !== undefined)
        agentMetrics.lastSuccess(d.name, Date.parse(recorded.lastSuccessAt))
      if (recorded !== undefined) agentMetrics.lastOutcome(d.name, recorded.outcome)
    }
    for (const d of initial.deployments) addSlot(d)
    // The vault expiry series as the last run left it (its state records, for the same configuration):
    // shown before the first read, which an outage of the vault or of its identity provider may delay.
    yield* Effect.forEach(
      initial.deployments,
      (d) => {
        const served = state.get(d.name)
        return served?.servedNotAfter === undefined ||
          !isDeploymentOf(served.configFingerprint, d) ||
          !Number.isFinite(Date.parse(served.servedNotAfter))
          ? Effect.void
          : metricsFor(d).certificateExpiry(
              { vaultUrl: d.target.vaultUrl, certificateName: d.target.certificateName },
              new Date(served.servedNotAfter),
            )
      },
      { discard: true },
    )
    agentMetrics.deployments(slots.size)
    agentMetrics.ready(false)
    if (slots.size === 0) {
      ready = true
      agentMetrics.ready(true)
    }

    /** Fibers of deployments a reload removed, while their interruption waits for an import or rollback in flight. */
    const detached = new Set<Fiber.Fiber<unknown, unknown>>()

    const apply = (config: AgentConfig) =>
      Effect.gen(function* () {
        const next = new Map(config.deployments.map((d) => [d.name, d]))
        const removed = [...slots.keys()].filter((name) => !next.has(name))
        // The attempts of removed deployments: stopped all at once below. One by one, the removed
        // deployments not yet reached went on sending imports while the reload waited for one
        // already sent.
        const stopped: Array<Fiber.Fiber<unknown, unknown>> = []
        for (const name of removed) {
          const slot = slots.get(name)
          // Counted as attempted now: interrupting its attempt below runs markAttempted again,
          // which must not count it a second time (readiness would come one deployment early).
          if (slot !== undefined) yield* markAttempted(slot)
          slots.delete(name)
          if (slot?.pass !== undefined) {
            const pass = slot.pass
            slot.pass = undefined
            yield* passDone(pass, undefined)
          }
          state.remove(name)
          agentMetrics.forget(name)
          if (slot?.fiber !== undefined) {
            // Tracked until it ends: a shutdown meanwhile waits for it as for any deploy in flight.
            detached.add(slot.fiber)
            stopped.push(slot.fiber)
          }
        }
        yield* Effect.forEach(
          stopped,
          (fiber) => Fiber.interrupt(fiber).pipe(Effect.ensuring(Effect.sync(() => detached.delete(fiber)))),
          { concurrency: "unbounded", discard: true },
        )
        let added = 0
        let changed = 0
        // The attempts of changed deployments, begun for their old configuration: stopped below.
        const replaced: Array<Fiber.Fiber<void>> = []
        for (const d of config.deployments) {
          const slot = slots.get(d.name)
          if (slot === undefined) {
            addSlot(d)
            added++
          } else if (
            slot.deployment.fingerprint !== d.fingerprint ||
            // A pickup check added, changed or taken out: not in the fingerprint (it writes nothing),
            // but the attempts from now on check the new one.
            !samePickup(slot.deployment.pickup, d.pickup)
          ) {
            // A pickup check taken out: its last answer would stay served (and an alert on it firing).
            if (d.pickup === undefined && slot.deployment.pickup !== undefined)
              agentMetrics.pickup(d.name, undefined)
            slot.deployment = d
            slot.facts = undefined
            slot.stamp = undefined
            slot.vault = undefined
            slot.expiryRecorded = undefined
            slot.servedNotAfter = undefined
            slot.expectedTags = undefined
            slot.listed = undefined
            // Another target or identity: its first attempt without a token, or that cannot read, is told again.
            slot.noTokenTold = false
            slot.unread = undefined
            // Another configuration of what is written: the version the old one wrote is not its own.
            slot.own = undefined
            // Only a run in its attempt: one waiting for its permits reads the new configuration once it has them.
            if (slot.phase === "attempting" && slot.fiber !== undefined) replaced.push(slot.fiber)
            changed++
          }
        }
        // An attempt of the old configuration (its comparison read, its wait for an import permit) went
        // on to import into the old target after the reload said the configuration was applied: a
        // deployment moved away from a certificate or a vault was still written to it. Stopped where it
        // can be, as a removed deployment's: an import or rollback already sent is waited for, and its
        // outcome recorded for the configuration it was made for; the reload's pass starts them afresh.
        yield* Effect.forEach(replaced, Fiber.interrupt, { concurrency: "unbounded", discard: true })
        agentMetrics.deployments(slots.size)
        yield* Effect.logInfo("configuration applied").pipe(
          Effect.annotateLogs({ deployments: slots.size, added, changed, removed: removed.length }),
        )
      })

    const shutdown = Effect.gen(function* () {
      stopping = true
      yield* Effect.forEach([...listing], Fiber.interrupt, { discard: true })
      const fibers = [
        ...[...slots.values()].flatMap((s) => (s.fiber === undefined ? [] : [s.fiber])),
        ...detached,
      ]
      const committed = () => [...inFlight.values()].filter((p) => p !== "deploying").length
      yield* Effect.logInfo("stopping: finishing the deploys in flight").pipe(
        Effect.annotateLogs({
          inFlight: inFlight.size,
          committed: committed(),
          graceMs: settings.shutdownGraceMs,
        }),
      )
      const done = yield* Effect.timeoutOption(
        Effect.forEach(fibers, Fiber.interrupt, { concurrency: "unbounded", discard: true }),
        Duration.millis(settings.shutdownGraceMs),
      )
      if (done._tag === "None") {
        const rollingBack = () =>
          [...inFlight.entries()].filter(([, p]) => p === "rolling-back").map(([n]) => n)
        if (rollingBack().length > 0) {
          yield* Effect.logWarning(
            "grace period over; waiting for the rollbacks in flight (never abandoned half-way)",
          ).pipe(Effect.annotateLogs({ deployments: rollingBack() }))
          while (rollingBack().length > 0) yield* Effect.sleep("100 millis")
        }
      }
      // Whatever ended the wait: a deploy still in flight now is abandoned with the process.
      if (inFlight.size > 0) {
        unfinishedAtShutdown = true
        yield* Effect.logWarning(
          "grace period over; exiting with deploys unfinished (their outcome is not known: check them with `kvdeploy show`; exit 1)",
        ).pipe(Effect.annotateLogs({ deployments: [...inFlight.keys()] }))
      }
      yield* state.flush
      if (state.writeFailing()) {
        stateUnwrittenAtShutdown = true
        yield* Effect.logError(
          "the state file cannot be written: outcomes and holds since its last write are lost at this exit (exit 1)",
        ).pipe(
          Effect.annotateLogs({
            state: state.path,
            fix: "make the state directory writable again (the warning before says why it is not), then start the agent: it reads the last state written and reconciles every deployment, so a deploy whose outcome was lost is read back from the vault, not repeated blindly",
          }),
        )
      }
    })

    return {
      trigger,
      triggerAll,
      apply,
      deployments: () => [...slots.values()].map((s) => s.deployment),
      isReady: () => ready,
      releasesMemory: idle.available,
      shutdown,
    } satisfies Reconciler
  })

export type { TargetConfig }

/** Set when the shutdown's grace period ended with deploys still in flight: the process exits 1. */
let unfinishedAtShutdown = false
let stateUnwrittenAtShutdown = false
export const deploysUnfinishedAtShutdown = (): boolean => unfinishedAtShutdown
/** Whether the last write of the state file, at shutdown, failed: the exit is 1. */
export const stateUnwrittenAtExit = (): boolean => stateUnwrittenAtShutdown
