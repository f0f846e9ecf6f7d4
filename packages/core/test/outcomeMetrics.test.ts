/**
 * Every metric a deploy records, for each outcome: the whole list, so a series counted for an
 * outcome it does not belong to fails here (a mutation run showed that an idempotent skip, or a
 * rollback, counted after every deploy went unnoticed by the suite). The vault request series are
 * the adapter's, not the deploy program's, and are left out; the duration's value is checked apart.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { DeployOutcome } from "../src/index.js"
import {
  Fault,
  InMemoryVaultHandle,
  issue,
  MetricsRecorder,
  makeAuthority,
  withWrongKey,
} from "../src/testing/index.js"
import { expectTag, fresh, managedTags, NAME, request, runDeploy, target } from "./fixtures.js"

const ca = makeAuthority("outcome-metrics")
// Each with its own expiry, so the expiry recorded names the certificate it was read from.
const DAY = 86_400_000
const oldCert = issue({ seed: "old", issuer: ca, notAfter: new Date(Date.UTC(2031, 0, 1)) })
const newCert = issue({ seed: "new", issuer: ca, notAfter: new Date(Date.UTC(2031, 0, 1) + 90 * DAY) })
const foreignCert = issue({
  seed: "foreign",
  issuer: ca,
  notAfter: new Date(Date.UTC(2031, 0, 1) + 30 * DAY),
})
const series = `${target().vaultUrl}/${NAME}`
const seconds = (d: Date): number => d.getTime() / 1000

const seedOld = Effect.flatMap(Effect.service(InMemoryVaultHandle), (vault) =>
  vault.seed(NAME, oldCert.material, { tags: managedTags }),
)
const deployNew = runDeploy(request(newCert.material))
const withVault = <A>(f: (vault: InMemoryVaultHandle["Service"]) => A) =>
  Effect.map(Effect.service(InMemoryVaultHandle), f)

interface Case {
  readonly name: string
  readonly tag: DeployOutcome["_tag"]
  /** Sets the vault up and deploys. */
  readonly run: Effect.Effect<DeployOutcome, never, Effect.Services<typeof deployNew> | InMemoryVaultHandle>
  /** The deploy's metric events but the duration and the vault requests, in order. */
  readonly events: ReadonlyArray<readonly [string, string | number]>
}

const cases: ReadonlyArray<Case> = [
  {
    name: "Succeeded: the new certificate's expiry",
    tag: "Succeeded",
    run: Effect.andThen(seedOld, deployNew),
    events: [
      ["deployAttempt", "succeeded"],
      ["certificateExpiry", seconds(newCert.notAfter)],
    ],
  },
  {
    name: "Skipped: one idempotent skip, the served certificate's expiry",
    tag: "Skipped",
    run: Effect.andThen(
      Effect.flatMap(Effect.service(InMemoryVaultHandle), (v) =>
        v.seed(NAME, newCert.material, { tags: managedTags }),
      ),
      deployNew,
    ),
    events: [
      ["deployAttempt", "skipped"],
      ["idempotentSkip", ""],
      ["certificateExpiry", seconds(newCert.notAfter)],
    ],
  },
  {
    name: "Rejected: the reason, nothing about what is served",
    tag: "Rejected",
    run: Effect.andThen(seedOld, runDeploy(request(withWrongKey(newCert)))),
    events: [
      ["deployAttempt", "rejected"],
      ["validateFailure", "key_mismatch"],
    ],
  },
  {
    name: "Failed at the import: the snapshot's expiry (it is still served)",
    tag: "Failed",
    run: Effect.andThen(
      seedOld,
      Effect.andThen(
        withVault((v) => v.script("importVersion", Fault.fail("Rejected"))),
        deployNew,
      ),
    ),
    events: [
      ["deployAttempt", "failed"],
      ["certificateExpiry", seconds(oldCert.notAfter)],
    ],
  },
  {
    name: "Unverified: one unreadable verify, no expiry (what is served is not known)",
    tag: "Unverified",
    run: Effect.andThen(
      seedOld,
      Effect.andThen(
        withVault((v) => v.script("getLatest", Fault.pass, ...Fault.repeat(5, Fault.fail("Unavailable")))),
        deployNew,
      ),
    ),
    events: [
      ["deployAttempt", "unverified"],
      ["postVerifyFailure", "unreadable"],
    ],
  },
  {
    name: "RolledBack: the mismatch, the restored rollback, the previous certificate's expiry",
    tag: "RolledBack",
    run: Effect.andThen(
      seedOld,
      Effect.andThen(
        withVault((v) => v.script("importVersion", Fault.alter("drop-tags"))),
        deployNew,
      ),
    ),
    events: [
      ["deployAttempt", "rolled_back"],
      ["postVerifyFailure", "mismatch"],
      ["rollback", "restored"],
      ["certificateExpiry", seconds(oldCert.notAfter)],
    ],
  },
  {
    name: "RollbackFailed: the mismatch and the failed rollback, no expiry",
    tag: "RollbackFailed",
    run: Effect.andThen(
      seedOld,
      Effect.andThen(
        withVault((v) => {
          v.setSecretsGet(false)
          v.script("importVersion", Fault.alter("drop-tags"))
        }),
        deployNew,
      ),
    ),
    events: [
      ["deployAttempt", "rollback_failed"],
      ["postVerifyFailure", "mismatch"],
      ["rollback", "also_failed"],
    ],
  },
  {
    name: "Superseded: the verify's failure as superseded, the other writer's certificate's expiry, no rollback",
    tag: "Superseded",
    run: Effect.andThen(
      seedOld,
      Effect.andThen(
        withVault((v) => v.script("getLatest", Fault.pass, Fault.foreignImport(foreignCert.material))),
        deployNew,
      ),
    ),
    events: [
      ["deployAttempt", "superseded"],
      ["postVerifyFailure", "superseded"],
      ["certificateExpiry", seconds(foreignCert.notAfter)],
    ],
  },
]

describe("the metrics a deploy records, by outcome", () => {
  for (const c of cases)
    it.effect(c.name, () =>
      fresh(
        Effect.gen(function* () {
          const metrics = yield* MetricsRecorder
          const o = expectTag(yield* c.run, c.tag)
          const events = metrics
            .events()
            .filter((e) => e.series !== "vaultRequest" && e.series !== "vaultThrottled")
          assert.deepStrictEqual(
            events
              .filter((e) => e.series !== "deployDuration")
              .map((e) => [e.series, e.series === "certificateExpiry" ? e.value : e.label] as const),
            c.events,
          )
          for (const e of events) if (e.series === "certificateExpiry") assert.strictEqual(e.label, series)
          // One duration, in seconds: the outcome's own timing.
          assert.deepStrictEqual(
            events.flatMap((e) => (e.series === "deployDuration" ? [e.value] : [])),
            [o.timings.durationMs / 1000],
          )
        }),
      ),
    )
})
