/**
 * The in-memory vault's `listCertificates` (what core's and the agent's unit
 * tests list against): pages of 25 of the latest versions of the certificates
 * that are not soft-deleted, by name; a continuation that resumes after the
 * previous page; faults and call counts as for the other operations.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type ListedCertificate, type ListedPage, Vault } from "../src/index.js"
import { Fault, InMemoryVaultHandle, issue, MetricsRecorder, makeAuthority } from "../src/testing/index.js"
import { fresh } from "./fixtures.js"

const ca = makeAuthority("list")

const listOf = Effect.flatMap(Effect.service(Vault), (vault) =>
  vault.listCertificates === undefined
    ? Effect.die(new Error("the in-memory vault has no listCertificates"))
    : Effect.succeed(vault.listCertificates),
)

/** Every page from the first, and the entries in order. */
const listAll = Effect.gen(function* () {
  const list = yield* listOf
  const pages: Array<ListedPage> = []
  let continuation: string | undefined
  do {
    const page = yield* list(continuation)
    pages.push(page)
    continuation = page.continuation
  } while (continuation !== undefined && pages.length < 100)
  return { pages, entries: pages.flatMap((p): ReadonlyArray<ListedCertificate> => p.certificates) }
})

const seedNamed = (names: ReadonlyArray<string>) =>
  Effect.flatMap(Effect.service(InMemoryVaultHandle), (vault) =>
    Effect.forEach(names, (name) =>
      vault.seed(name, issue({ seed: name, issuer: ca }).material, { tags: { t: name } }),
    ),
  )

const names = Array.from({ length: 60 }, (_, i) => `cert-${String(i).padStart(2, "0")}`)

describe("InMemoryVault listCertificates", () => {
  it.effect("pages of 25 (25 + 25 + 10), latest versions, soft-deleted ones absent, one call per page", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const port = yield* Vault
        yield* seedNamed([...names, "gone"])
        yield* vault.softDelete("gone")
        // A disabled second version, operator tags, no tags.
        yield* vault.seed("cert-07", issue({ seed: "cert-07-2", issuer: ca }).material, {
          tags: { t: "second" },
          enabled: false,
        })
        yield* vault.seed("cert-08", issue({ seed: "cert-08-2", issuer: ca }).material, {
          tags: { env: "production", owner: "team-a" },
        })
        yield* vault.seed("cert-09", issue({ seed: "cert-09-2", issuer: ca }).material)
        const { pages, entries } = yield* listAll
        assert.deepStrictEqual(
          pages.map((p) => p.certificates.length),
          [25, 25, 10],
        )
        assert.deepStrictEqual(
          pages.map((p) => p.continuation === undefined),
          [false, false, true],
        )
        assert.deepStrictEqual(
          entries.map((e) => e.name),
          names,
        )
        assert.deepStrictEqual(vault.calls(), { total: 3, byOperation: { listCertificates: 3 } })
        const recorder = yield* MetricsRecorder
        assert.strictEqual(recorder.count("vaultRequest", "listCertificates:ok"), 3)
        for (const entry of entries) {
          const latest = yield* port.getLatest(entry.name)
          assert.deepStrictEqual(entry, {
            name: entry.name,
            x5t: latest.x5t,
            enabled: latest.enabled,
            tags: latest.tags,
            ...(latest.expiresAt === undefined ? {} : { expiresAt: latest.expiresAt }),
          })
        }
        const byName = new Map(entries.map((e) => [e.name, e]))
        assert.strictEqual(byName.get("cert-07")?.enabled, false)
        assert.strictEqual(byName.get("cert-07")?.x5t, issue({ seed: "cert-07-2", issuer: ca }).x5t)
        assert.deepStrictEqual(byName.get("cert-08")?.tags, { env: "production", owner: "team-a" })
        assert.deepStrictEqual(byName.get("cert-09")?.tags, {})
        assert.strictEqual(byName.get("cert-00")?.enabled, true)
      }),
    ),
  )

  it.effect("an empty vault answers one page with no entries", () =>
    fresh(
      Effect.gen(function* () {
        const list = yield* listOf
        assert.deepStrictEqual(yield* list(undefined), { certificates: [], continuation: undefined })
        // Exactly one full page: no continuation to an empty page.
        yield* seedNamed(names.slice(0, 25))
        const page = yield* list(undefined)
        assert.strictEqual(page.certificates.length, 25)
        assert.strictEqual(page.continuation, undefined)
      }),
    ),
  )

  it.effect("names in Key Vault's order: case-insensitive", () =>
    fresh(
      Effect.gen(function* () {
        yield* seedNamed(["b-app", "A-app", "c-app", "a-bpp"])
        const { entries } = yield* listAll
        assert.deepStrictEqual(
          entries.map((e) => e.name),
          ["A-app", "a-bpp", "b-app", "c-app"],
        )
      }),
    ),
  )

  it.effect("a continuation resumes after the previous page's last name, whatever changed since", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const list = yield* listOf
        yield* seedNamed(names)
        const first = yield* list(undefined)
        assert.strictEqual(first.certificates.at(-1)?.name, "cert-24")
        // Between pages: a name of the first page goes, one before it and one after it arrive.
        yield* vault.softDelete("cert-03")
        yield* vault.softDelete("cert-24")
        yield* seedNamed(["cert-00a", "cert-30a"])
        const second = yield* list(first.continuation)
        assert.deepStrictEqual(
          second.certificates.map((c) => c.name),
          [...names.slice(25, 31), "cert-30a", ...names.slice(31, 49)],
        )
        const third = yield* list(second.continuation)
        assert.deepStrictEqual(
          third.certificates.map((c) => c.name),
          names.slice(49),
        )
        assert.strictEqual(third.continuation, undefined)
      }),
    ),
  )

  it.effect("a continuation it did not answer is VaultRequestRejected naming the fix", () =>
    fresh(
      Effect.gen(function* () {
        const list = yield* listOf
        for (const continuation of [
          "https://other.vault.azure.net/certificates?$skiptoken=x",
          // Its own prefix with a name that does not decode.
          "in-memory-list:after:%E0%A4%A",
        ]) {
          const error = yield* Effect.flip(list(continuation))
          assert.strictEqual(error._tag, "VaultRequestRejected")
          if (error._tag !== "VaultRequestRejected") return
          assert.strictEqual(error.code, "InvalidContinuation")
          assert.include(error.message, "pass undefined for the first page")
        }
      }),
    ),
  )

  it.effect("faults are scripted and counted as for the other operations", () =>
    fresh(
      Effect.gen(function* () {
        const vault = yield* InMemoryVaultHandle
        const list = yield* listOf
        yield* seedNamed(names.slice(0, 3))
        vault.script(
          "listCertificates",
          Fault.fail("Throttled"),
          Fault.fail("Forbidden"),
          Fault.fail("NotFound"),
          Fault.afterWrite,
          Fault.pass,
          Fault.foreignImport(issue({ seed: "foreign", issuer: ca }).material),
        )
        const throttled = yield* Effect.flip(list(undefined))
        assert.strictEqual(throttled._tag, "VaultThrottled")
        if (throttled._tag === "VaultThrottled") assert.strictEqual(throttled.retryAfterMs, 1000)
        assert.strictEqual((yield* Effect.flip(list(undefined)))._tag, "VaultForbidden")
        // The port's list has no not-found: a scripted 404 is a definite refusal.
        const notFound = yield* Effect.flip(list(undefined))
        assert.strictEqual(notFound._tag, "VaultRequestRejected")
        if (notFound._tag === "VaultRequestRejected") assert.strictEqual(notFound.code, "NotFound")
        assert.strictEqual((yield* Effect.flip(list(undefined)))._tag, "VaultAmbiguous")
        assert.strictEqual((yield* list(undefined)).certificates.length, 3)
        // A foreign import names no certificate on a list: nothing is imported.
        assert.strictEqual((yield* list(undefined)).certificates.length, 3)
        assert.strictEqual(vault.pendingFaults(), 0)
        assert.deepStrictEqual(
          vault.callLog().map((r) => `${r.operation}:${r.outcome}`),
          [
            "listCertificates:Throttled",
            "listCertificates:Forbidden",
            "listCertificates:NotFound",
            "listCertificates:AmbiguousAfterWrite",
            "listCertificates:ok",
            "listCertificates:ok",
          ],
        )
        const recorder = yield* MetricsRecorder
        assert.strictEqual(recorder.count("vaultRequest", "listCertificates:throttled"), 1)
        assert.strictEqual(recorder.count("vaultRequest", "listCertificates:forbidden"), 1)
        assert.strictEqual(recorder.count("vaultRequest", "listCertificates:ambiguous"), 1)
        assert.strictEqual(recorder.count("vaultRequest", "listCertificates:ok"), 2)
        assert.strictEqual(recorder.count("vaultThrottled"), 1)
      }),
    ),
  )
})

describe("InMemoryVault StaleRead on the version list and the deleted certificate", () => {
  it.effect(
    "lagging behind the last delete: versions listed, no deleted certificate; behind the last recovery: no list, the delete it undid",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          const [first] = yield* seedNamed(["lagging"])
          const tagsOf = (e: Effect.Effect<unknown, { readonly _tag: string }>) =>
            Effect.match(e, { onFailure: (f) => f._tag, onSuccess: () => "ok" })
          // Neither yet: the fault changes nothing.
          vault.script("listVersions", Fault.staleRead)
          assert.deepStrictEqual(
            (yield* port.listVersions("lagging")).map((v) => v.versionId),
            [first?.versionId],
          )
          yield* vault.softDelete("lagging")
          vault.script("listVersions", Fault.staleRead)
          vault.script("getDeleted", Fault.staleRead)
          assert.deepStrictEqual(
            (yield* port.listVersions("lagging")).map((v) => v.versionId),
            [first?.versionId],
          )
          assert.strictEqual(yield* tagsOf(port.getDeleted("lagging")), "VaultNotFound")
          // Without the fault, the delete shows.
          assert.strictEqual(yield* tagsOf(port.listVersions("lagging")), "VaultNotFound")
          const deleted = yield* port.getDeleted("lagging")
          yield* port.recoverDeleted("lagging")
          const second = yield* vault.seed("lagging", issue({ seed: "lagging-2", issuer: ca }).material)
          vault.script("listVersions", Fault.staleRead)
          vault.script("getDeleted", Fault.staleRead)
          assert.strictEqual(yield* tagsOf(port.listVersions("lagging")), "VaultNotFound")
          const undone = yield* port.getDeleted("lagging")
          // The delete the recovery undid, with its latest version then (not the one written since).
          assert.strictEqual(undone.deletedAt?.getTime(), deleted.deletedAt?.getTime())
          assert.isDefined(undone.deletedAt)
          assert.strictEqual(undone.latest?.versionId, first?.versionId)
          assert.notStrictEqual(undone.latest?.versionId, second.versionId)
          // Without the fault, the recovery shows.
          assert.strictEqual(yield* tagsOf(port.getDeleted("lagging")), "VaultNotFound")
          assert.strictEqual((yield* port.listVersions("lagging")).length, 2)
        }),
      ),
  )
})

describe("InMemoryVault listVersions answers as Key Vault", () => {
  it.effect(
    "a name that never held a certificate lists no versions (200, not 404); a soft-deleted one is not found; a recovered one lists its versions",
    () =>
      fresh(
        Effect.gen(function* () {
          const vault = yield* InMemoryVaultHandle
          const port = yield* Vault
          const recorder = yield* MetricsRecorder
          const tagsOf = (e: Effect.Effect<unknown, { readonly _tag: string }>) =>
            Effect.match(e, { onFailure: (f) => f._tag, onSuccess: () => "ok" })
          // Key Vault's (and the emulator's) answer for a name with no certificate: an empty page.
          assert.deepStrictEqual(yield* port.listVersions("never-held"), [])
          assert.deepStrictEqual(vault.callLog().at(-1), { operation: "listVersions", outcome: "ok" })
          assert.strictEqual(recorder.count("vaultRequest", "listVersions:ok"), 1)
          // Its latest is still not found: only the list answers empty.
          assert.strictEqual(yield* tagsOf(port.getLatest("never-held")), "VaultNotFound")
          const [first] = yield* seedNamed(["held"])
          yield* vault.softDelete("held")
          assert.strictEqual(yield* tagsOf(port.listVersions("held")), "VaultNotFound")
          yield* port.recoverDeleted("held")
          assert.deepStrictEqual(
            (yield* port.listVersions("held")).map((v) => v.versionId),
            [first?.versionId],
          )
          // A scripted NotFound is still a 404, for tests that need one.
          vault.script("listVersions", Fault.fail("NotFound"))
          assert.strictEqual(yield* tagsOf(port.listVersions("never-held")), "VaultNotFound")
        }),
      ),
  )
})
