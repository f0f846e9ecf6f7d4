/**
 * Vault answers that lack facts, or that a proxy or a faulty service changed (the emulator's
 * omitFields and setFields faults): the adapter reports none of them as a version with made-up
 * facts, and the deploy program concludes nothing from them. Every assertion about the vault reads
 * the emulator's own state or request log.
 */
import type { TokenCredential } from "@azure/core-auth"
import { CertificateClient } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import {
  type CertificateMaterial,
  type DeployOutcome,
  type ListedCertificate,
  type TargetConfig,
  Vault,
} from "@kvdeploy/core"
import { MetricsRecorder } from "@kvdeploy/core/test"
import type { Emulator, FaultRule } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import { MAX_LISTED_VERSION_PAGES } from "../src/AzureKeyVault.js"
import {
  credentialFor,
  deployOnce,
  fastReads,
  startEmulator,
  targetFor,
  worldLayer,
} from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial, x5tOf } from "./support/pki.js"

const VAULT = "answers"
let emulator: Emulator
let ca: Issuer
let credential: TokenCredential

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT] })
  ca = await makeCa()
  credential = await Effect.runPromise(credentialFor(emulator, targetFor(emulator, VAULT, "any")))
})
afterAll(() => emulator?.stop())

const material = () => Effect.promise(() => makeMaterial(ca))
const versionsOf = (name: string) => emulator.state.versions(VAULT, name) ?? []
const ops = (requests: ReadonlyArray<{ operation: string; status: number }>) =>
  requests.map((r) => `${r.operation} ${r.status}`)

/** One deploy through a fresh adapter: the outcome and the Key Vault requests it made (challenge apart). */
const deployTo = (target: TargetConfig, m: CertificateMaterial) =>
  Effect.gen(function* () {
    const since = emulator.requests.mark()
    const outcome: DeployOutcome = yield* deployOnce(target, m, `id-${target.certificateName}`).pipe(
      fastReads,
    )
    const requests = emulator.requests.entries({ vault: VAULT, since }).filter((e) => !e.challenge)
    return { outcome, requests }
  }).pipe(Effect.provide(worldLayer(emulator, target, credential)))

/** A certificate with one version deployed by kvdeploy, then `faults` for it: the second deploy's result. */
const secondDeploy = (
  name: string,
  faults: (name: string) => ReadonlyArray<Omit<FaultRule, "vault" | "name">>,
) =>
  Effect.gen(function* () {
    const target = targetFor(emulator, VAULT, name)
    expect((yield* deployTo(target, yield* material())).outcome._tag).toBe("Succeeded")
    for (const rule of faults(name)) emulator.faults.add({ ...rule, vault: VAULT, name } as FaultRule)
    const m = yield* material()
    const result = yield* deployTo(target, m)
    emulator.faults.clear()
    return { ...result, x5t: yield* Effect.promise(() => x5tOf(m.leaf)) }
  })

/** The read after the import (the verify's first), `times` times from then on. */
const verifyRead = (action: FaultRule["action"], times: FaultRule["times"] = "always") =>
  ({ operation: "getLatest", skip: 1, times, action }) as const

/** A port call through a fresh adapter, with its recorded metrics. */
const withVault = <A, E>(name: string, body: (vault: Vault["Service"]) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const vault = yield* Vault
    const answer = yield* body(vault)
    return { answer, recorder: yield* MetricsRecorder }
  }).pipe(Effect.provide(worldLayer(emulator, targetFor(emulator, VAULT, name), credential)))

describe("vault answers without the facts a version is reported with", () => {
  it.live("a read without x5t: the x5t is the certificate's SHA-1, as Key Vault's is", () =>
    Effect.gen(function* () {
      const result = yield* secondDeploy("no-x5t-app", () => [
        verifyRead({ kind: "omitFields", fields: ["x5t"] }),
      ])
      expect(result.outcome._tag).toBe("Succeeded")
      expect(versionsOf("no-x5t-app")).toHaveLength(2)
      expect(ops(result.requests)).toEqual(["getLatest 200", "import 200", "getLatest 200"])
    }),
  )

  it.live(
    "a verify read without cer, enabled or created, or naming no version: Unverified, nothing rolled back, no read repeated",
    () =>
      Effect.gen(function* () {
        for (const [label, fields, named] of [
          ["cer", ["cer"], "`cer`"],
          ["enabled", ["attributes.enabled"], "`attributes.enabled`"],
          ["attributes", ["attributes"], "`attributes.enabled`"],
          ["id", ["id"], "the SDK failed on it"],
        ] as const) {
          const name = `verify-no-${label}-app`
          const result = yield* secondDeploy(name, () => [
            verifyRead({ kind: "omitFields", fields: [...fields] }),
          ])
          expect(result.outcome._tag, label).toBe("Unverified")
          expect(result.outcome.reason, label).toContain(named)
          expect(result.outcome.reason, label).toContain("the vault's answer cannot be used")
          // The import is the one version added: no rollback wrote another.
          expect(versionsOf(name), label).toHaveLength(2)
          expect(versionsOf(name).at(-1)?.x5t, label).toBe(result.x5t)
          // A malformed answer is not asked for again: it would come the same way.
          expect(ops(result.requests), label).toEqual(["getLatest 200", "import 200", "getLatest 200"])
        }
      }),
  )

  it.live(
    "a verify read that states the version disabled without saying it was is not taken as served: Unverified",
    () =>
      Effect.gen(function* () {
        const name = "disabled-unsaid-app"
        const result = yield* secondDeploy(name, () => [
          { operation: "import", times: 1, action: { kind: "disableAfterCommit" } },
          verifyRead({ kind: "omitFields", fields: ["attributes.enabled"] }),
        ])
        // Before: Succeeded, "the vault serves the new version", while it served a disabled one.
        expect(result.outcome._tag).toBe("Unverified")
        expect(versionsOf(name).at(-1)?.enabled).toBe(false)
      }),
  )

  it.live("a snapshot without enabled or created: Failed before the import, nothing written", () =>
    Effect.gen(function* () {
      for (const field of ["attributes.enabled", "attributes.created"]) {
        const name = `snapshot-no-${field.split(".")[1]}-app`
        const result = yield* secondDeploy(name, () => [
          { operation: "getLatest", times: 1, action: { kind: "omitFields", fields: [field] } },
        ])
        expect(result.outcome._tag, field).toBe("Failed")
        expect(result.outcome.reason, field).toContain(`\`${field}\``)
        expect(versionsOf(name), field).toHaveLength(1)
        expect(ops(result.requests), field).toEqual(["getLatest 200"])
      }
    }),
  )

  it.live(
    "a lost import, then a version list whose entries lack created, x5t or enabled: Unverified, never Failed (the import landed)",
    () =>
      Effect.gen(function* () {
        for (const field of ["attributes.created", "x5t", "attributes.enabled"]) {
          const name = `reconcile-no-${field.replace("attributes.", "")}-app`
          const result = yield* secondDeploy(name, () => [
            { operation: "import", times: 1, action: { kind: "dropAfterCommit" } },
            {
              operation: "versions",
              times: "always",
              action: { kind: "omitFields", fields: [`value.*.${field}`] },
            },
          ])
          // Before: Failed, "the import had not taken effect", though it had: the entries' missing
          // creation times read as 1970, before the snapshot.
          expect(result.outcome._tag, field).toBe("Unverified")
          expect(result.outcome.reason, field).toContain(`\`${field}\``)
          expect(versionsOf(name), field).toHaveLength(2)
          expect(versionsOf(name).at(-1)?.x5t, field).toBe(result.x5t)
        }
      }),
  )

  it.live("a version list whose next link leads back to its own page ends at once: Unverified", () =>
    Effect.gen(function* () {
      const name = "looping-list-app"
      const result = yield* secondDeploy(name, (n) => [
        { operation: "import", times: 1, action: { kind: "dropAfterCommit" } },
        {
          operation: "versions",
          times: "always",
          action: {
            kind: "setFields",
            fields: {
              nextLink: `${emulator.vault(VAULT).url}/certificates/${n}/versions?api-version=2025-07-01`,
            },
          },
        },
      ])
      // Before: the deploy followed the link for good (100,000 requests in a minute).
      expect(result.outcome._tag).toBe("Unverified")
      expect(result.outcome.reason).toContain("twice")
      expect(result.requests.filter((r) => r.operation === "versions")).toHaveLength(2)
    }),
  )

  it.live(
    "a version list whose next links are each new but lead on to empty pages ends after 2,000 pages: Unverified",
    () =>
      Effect.gen(function* () {
        const name = "endless-list-app"
        // The first page's items as Key Vault answers them, then made-up links to empty pages, for good.
        const result = yield* secondDeploy(name, () => [
          { operation: "import", times: 1, action: { kind: "dropAfterCommit" } },
          { operation: "versions", times: "always", action: { kind: "endlessList" } },
        ])
        expect(MAX_LISTED_VERSION_PAGES).toBe(2_000)
        // Before: the deploy followed the links for good.
        expect(result.outcome._tag).toBe("Unverified")
        expect(result.outcome.reason).toContain("it did not end after 2000 pages (2 versions listed)")
        // The first page and 2,000 made-up ones: the one past the cap is read, to know there is one.
        const lists = result.requests.filter((r) => r.operation === "versions")
        expect(lists).toHaveLength(1 + MAX_LISTED_VERSION_PAGES)
        expect(new Set(lists.map((r) => r.query)).size).toBe(lists.length)
      }),
    60_000,
  )
})

describe("the adapter's reads of answers without their facts", () => {
  it.live(
    "a certificate whose create is pending (disabled, without cer and x5t) is read as such by every read that answers it, not as malformed; the list leaves it out",
    () =>
      Effect.gen(function* () {
        const name = "pending-shape-app"
        const sdk = new CertificateClient(emulator.vault(VAULT).url, credential, {
          tlsOptions: { ca: emulator.caPem },
          disableChallengeResourceVerification: true,
        })
        yield* Effect.promise(() =>
          sdk.beginCreateCertificate(name, { issuerName: "Unknown", subject: "CN=pending.example.test" }),
        )
        const { answer } = yield* withVault(name, (vault) =>
          Effect.gen(function* () {
            const latest = yield* vault.getLatest(name)
            const versions = yield* vault.listVersions(name)
            const listed: Array<ListedCertificate> = []
            let continuation: string | undefined
            do {
              const page = yield* vault.listCertificates?.(continuation) ?? Effect.die("no list")
              listed.push(...page.certificates)
              continuation = page.continuation
            } while (continuation !== undefined)
            return { latest, versions, entry: listed.find((c) => c.name === name) }
          }),
        )
        expect(answer.latest).toMatchObject({ enabled: false, x5t: "" })
        expect(answer.latest.cer).toBeUndefined()
        expect(answer.versions).toHaveLength(1)
        expect(answer.versions[0]).toMatchObject({ enabled: false, x5t: "" })
        // Not on the list: Key Vault lists a certificate not completely provisioned only with
        // includePending=true, which the adapter does not ask (a reader reads it on its own, as above).
        expect(answer.entry).toBeUndefined()
        // The same answer with the version enabled is no pending create: malformed.
        emulator.faults.add({
          operation: "getLatest",
          vault: VAULT,
          name,
          action: { kind: "setFields", fields: { "attributes.enabled": true } },
        })
        const { answer: enabled } = yield* withVault(name, (vault) => Effect.flip(vault.getLatest(name)))
        expect(enabled._tag).toBe("VaultMalformedAnswer")
        expect(enabled.message).toContain("`x5t`")
        // Its pending operation without a status: not "unknown", which read as not in progress.
        const { answer: operation } = yield* withVault(
          name,
          (vault) => vault.getOperation?.(name) ?? Effect.die("no getOperation"),
        )
        expect(operation?.status).toBe("inProgress")
        emulator.faults.add({
          operation: "getOperation",
          vault: VAULT,
          name,
          action: { kind: "omitFields", fields: ["status"] },
        })
        const { answer: statusless } = yield* withVault(name, (vault) =>
          Effect.flip(vault.getOperation?.(name) ?? Effect.die("no getOperation")),
        )
        expect(statusless._tag).toBe("VaultMalformedAnswer")
        expect(statusless.message).toContain("lacks `status`")
      }),
  )

  it.live(
    "reads that lack facts fail VaultMalformedAnswer naming them, are counted as malformed, and are sent once",
    () =>
      Effect.gen(function* () {
        const name = "adapter-malformed-app"
        const url = emulator.vault(VAULT).url
        const omit = (...fields: Array<string>): FaultRule["action"] => ({ kind: "omitFields", fields })
        const set = (fields: Record<string, unknown>): FaultRule["action"] => ({ kind: "setFields", fields })
        yield* deployTo(targetFor(emulator, VAULT, name), yield* material())
        const cases: ReadonlyArray<
          readonly [
            FaultRule["operation"],
            FaultRule["action"],
            string,
            (
              v: Vault["Service"],
            ) => Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>,
          ]
        > = [
          ["getLatest", omit("attributes.created"), "`attributes.created`", (v) => v.getLatest(name)],
          ["getLatest", omit("id"), "the SDK failed on it", (v) => v.getLatest(name)],
          [
            "getLatest",
            set({ id: `${url}/certificates/${name}` }),
            "a version in its `id`",
            (v) => v.getLatest(name),
          ],
          [
            "getLatest",
            set({ id: `${url}/certificates/another-app/${"0".repeat(32)}` }),
            'names the certificate "another-app"',
            (v) => v.getLatest(name),
          ],
          [
            "getVersion",
            set({ id: `${url}/certificates/${name}/${"f".repeat(32)}` }),
            "not the",
            (v) => Effect.flatMap(v.getLatest(name), (l) => v.getVersion(name, l.versionId)),
          ],
          ["versions", omit("value.*.attributes"), "`attributes.enabled`", (v) => v.listVersions(name)],
          [
            "getSecret",
            omit("value"),
            "has no value",
            (v) => Effect.flatMap(v.getLatest(name), (l) => v.getVersionSecret(name, l.versionId)),
          ],
          // A value that is no text (a number): a malformed answer, not a crash of the call.
          [
            "getSecret",
            set({ value: 42 }),
            "has no text value (its value is a number)",
            (v) => Effect.flatMap(v.getLatest(name), (l) => v.getVersionSecret(name, l.versionId)),
          ],
        ]
        for (const [operation, action, named, read] of cases) {
          emulator.faults.add({ operation, vault: VAULT, action } as FaultRule)
          const since = emulator.requests.mark()
          const { answer, recorder } = yield* withVault(name, (vault) => Effect.flip(read(vault)))
          expect(answer._tag, `${operation} ${JSON.stringify(action)}`).toBe("VaultMalformedAnswer")
          expect(answer.message, `${operation} ${JSON.stringify(action)}`).toContain(named)
          // Nothing of it was read (a backing secret without its value too): never "unrestorable",
          // which a rollback would repeat as "held no usable previous material".
          expect(
            (answer as { readonly unrestorable?: boolean }).unrestorable,
            `${operation} ${JSON.stringify(action)}`,
          ).toBeUndefined()
          expect(
            emulator.requests
              .entries({ vault: VAULT, since })
              .filter((e) => !e.challenge && e.operation === operation),
            `${operation} ${JSON.stringify(action)}`,
          ).toHaveLength(1)
          expect(
            recorder.events().some((e) => e.series === "vaultRequest" && e.label.endsWith(":malformed")),
            `${operation} ${JSON.stringify(action)}`,
          ).toBe(true)
        }
      }),
  )

  it.live(
    "a backing secret that says PEM and holds none is malformed, not a key that cannot be exported",
    () =>
      Effect.gen(function* () {
        const name = "pem-says-app"
        yield* deployTo(targetFor(emulator, VAULT, name), yield* material())
        emulator.faults.add({
          operation: "getSecret",
          vault: VAULT,
          name,
          action: { kind: "setFields", fields: { contentType: "application/x-pem-file" } },
        })
        const { answer } = yield* withVault(name, (vault) =>
          Effect.flip(
            Effect.flatMap(vault.getLatest(name), (l) => vault.getVersionSecret(name, l.versionId)),
          ),
        )
        expect(answer._tag).toBe("VaultMalformedAnswer")
        expect(answer.message).toContain("holds no PEM block")
        // Its value was read: a rollback says it held nothing usable, not that it could not be read.
        expect((answer as { readonly unrestorable?: boolean }).unrestorable).toBe(true)
      }),
  )

  it.live(
    "a certificate list entry without its facts is named apart; the page's other entries are listed",
    () =>
      Effect.gen(function* () {
        const name = "list-entries-app"
        yield* deployTo(targetFor(emulator, VAULT, name), yield* material())
        emulator.faults.add({
          operation: "list",
          vault: VAULT,
          action: { kind: "omitFields", fields: ["value.0.attributes.enabled"] },
        })
        const whole = emulator.state.versions(VAULT, name)?.length ?? 0
        expect(whole).toBeGreaterThan(0)
        const { answer, recorder } = yield* withVault(
          name,
          (vault) => vault.listCertificates?.(undefined) ?? Effect.die("no list"),
        )
        // Before: the page failed whole, and the agent's deployments of the vault each read their own.
        expect(answer.unusable).toHaveLength(1)
        expect(answer.unusable?.[0]?.detail).toBe("it lacks `attributes.enabled`")
        expect(answer.certificates.length).toBeGreaterThan(0)
        expect(answer.certificates.map((c) => c.name)).not.toContain(answer.unusable?.[0]?.name)
        expect(recorder.count("vaultRequest", "listCertificates:ok")).toBe(1)
        // Without the fault, the entry is listed with the others.
        const { answer: again } = yield* withVault(
          name,
          (vault) => vault.listCertificates?.(undefined) ?? Effect.die("no list"),
        )
        expect(again.unusable).toBeUndefined()
        expect(again.certificates.map((c) => c.name)).toContain(answer.unusable?.[0]?.name)
      }),
  )

  it.live(
    "an import whose answer names no version is ambiguous (it was done): the deploy finds and verifies it",
    () =>
      Effect.gen(function* () {
        const name = "import-no-id-app"
        const result = yield* secondDeploy(name, () => [
          { operation: "import", times: 1, action: { kind: "omitFields", fields: ["id"] } },
        ])
        expect(result.outcome._tag).toBe("Succeeded")
        expect(versionsOf(name)).toHaveLength(2)
        expect(ops(result.requests)).toEqual(["getLatest 200", "import 200", "versions 200", "getLatest 200"])
      }),
  )
})
