/**
 * `listCertificates` against @kvdeploy/kv-emulator with the real SDK over
 * HTTPS: one Key Vault request per page (read from the emulator's request
 * log), pages of 25 with an opaque continuation, each entry what `getLatest`
 * answers for that name, soft-deleted certificates absent, and the errors
 * mapped as the adapter's other reads map them.
 */
import type { TokenCredential } from "@azure/core-auth"
import { CertificateClient } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import {
  type ListedCertificate,
  type ListedPage,
  PfxCodec,
  type TargetConfig,
  Vault,
  type VaultError,
} from "@kvdeploy/core"
import { MetricsRecorder } from "@kvdeploy/core/test"
import type { Emulator, FaultAction } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as AzureKeyVault from "../src/index.js"
import { credentialFor, startEmulator, targetFor, worldLayer } from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"

const LISTED = "listed"
const EMPTY = "empty"
const UPDATED = "updated"
let emulator: Emulator
let ca: Issuer
let credential: TokenCredential
const targets = new Map<string, TargetConfig>()

const names = Array.from({ length: 60 }, (_, i) => `cert-${String(i).padStart(2, "0")}`)
const DISABLED = "cert-07"
const OPERATOR_TAGGED = "cert-08"
const UNTAGGED = "cert-09"
const SOFT_DELETED = ["cert-60", "zz-gone"]

const sdkFor = (vault: string) =>
  new CertificateClient(emulator.vault(vault).url, credential, {
    tlsOptions: { ca: emulator.caPem },
    disableChallengeResourceVerification: true,
  })

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [LISTED, EMPTY, UPDATED] })
  ca = await makeCa()
  for (const vault of [LISTED, EMPTY, UPDATED]) targets.set(vault, targetFor(emulator, vault, "any"))
  credential = await Effect.runPromise(credentialFor(emulator, targets.get(LISTED) as TargetConfig))
  // 60 certificates the list must show, 2 soft-deleted ones it must not.
  await Effect.runPromise(
    Effect.gen(function* () {
      const codec = yield* PfxCodec
      const vault = yield* Vault
      const importOne = (name: string, tags: Record<string, string>) =>
        Effect.gen(function* () {
          const material = yield* Effect.promise(() => makeMaterial(ca, "P-256", `CN=${name}.example.test`))
          const pfx = yield* codec.encode(material, { encoding: "modern", password: Redacted.make("") })
          return yield* vault.importVersion({ name, pfx, password: Redacted.make(""), tags })
        })
      for (const name of [...names, ...SOFT_DELETED])
        yield* importOne(name, name === UNTAGGED ? {} : { t: name })
      // A second version of the disabled one: the list answers the latest, not the first.
      yield* importOne(DISABLED, { t: `${DISABLED}-2` })
    }).pipe(Effect.provide(worldLayer(emulator, targets.get(LISTED) as TargetConfig, credential))),
  )
  const sdk = sdkFor(LISTED)
  const disabled = await sdk.getCertificate(DISABLED)
  await sdk.updateCertificateProperties(DISABLED, disabled.properties.version ?? "", { enabled: false })
  const tagged = await sdk.getCertificate(OPERATOR_TAGGED)
  await sdk.updateCertificateProperties(OPERATOR_TAGGED, tagged.properties.version ?? "", {
    tags: { env: "production", owner: "team-a" },
  })
  for (const name of SOFT_DELETED)
    await (await sdk.beginDeleteCertificate(name, { intervalInMs: 20 })).pollUntilDone()
}, 60_000)
afterAll(() => emulator?.stop())

const run = <A, E>(
  vault: string,
  effect: Effect.Effect<A, E, Vault | PfxCodec | MetricsRecorder>,
  options: AzureKeyVault.TargetVaultOptions = {},
) =>
  effect.pipe(Effect.provide(worldLayer(emulator, targets.get(vault) as TargetConfig, credential, options)))

const listOf = Effect.flatMap(Effect.service(Vault), (vault) =>
  vault.listCertificates === undefined
    ? Effect.die(new Error("the adapter has no listCertificates"))
    : Effect.succeed(vault.listCertificates),
)

/** How the first page's call fails while the emulator answers the list with `action` (`times` times). */
const listFailureWith = (action: FaultAction, times: number | "always") =>
  Effect.gen(function* () {
    const list = yield* listOf
    const id = emulator.faults.add({ operation: "list", vault: LISTED, times, action })
    return yield* Effect.flip(list(undefined)).pipe(
      Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))),
    )
  })

/** The list requests the emulator answered since `mark` (the challenge's 401 apart). */
const listRequests = (vault: string, mark: number) =>
  emulator.requests.entries({ since: mark, vault, operation: "list", challenge: false })

describe("listCertificates over the emulator", () => {
  it.live("pages of 25 (25 + 25 + 10), one request each, the continuation undefined on the last", () =>
    run(
      LISTED,
      Effect.gen(function* () {
        const list = yield* listOf
        const pages: Array<ListedPage> = []
        const requestsPerCall: Array<number> = []
        let continuation: string | undefined
        do {
          const mark = emulator.requests.mark()
          const page: ListedPage = yield* list(continuation)
          requestsPerCall.push(listRequests(LISTED, mark).length)
          pages.push(page)
          continuation = page.continuation
        } while (continuation !== undefined && pages.length < 10)
        expect(pages.map((p) => p.certificates.length)).toEqual([25, 25, 10])
        expect(requestsPerCall).toEqual([1, 1, 1])
        expect(pages.map((p) => p.continuation === undefined)).toEqual([false, false, true])
        for (const p of pages.slice(0, 2))
          expect(p.continuation?.startsWith(`${emulator.vault(LISTED).url}/certificates?`)).toBe(true)
        // Every live certificate once, the soft-deleted ones not at all.
        const listed = pages.flatMap((p) => p.certificates.map((c) => c.name))
        expect([...listed].sort()).toEqual(names)
        for (const gone of SOFT_DELETED) expect(listed).not.toContain(gone)
        // The page size is on the wire: the first page asks for 25, the continuations carry it.
        const requests = emulator.requests.entries({ vault: LISTED, operation: "list", challenge: false })
        for (const r of requests.slice(-3)) expect(r.query).toContain("maxresults=25")
        const recorder = yield* MetricsRecorder
        expect(recorder.count("vaultRequest", "listCertificates:ok")).toBe(3)
      }),
    ),
  )

  it.live("each entry's x5t, enabled and tags are what getLatest answers for that name", () =>
    run(
      LISTED,
      Effect.gen(function* () {
        const vault = yield* Vault
        const list = yield* listOf
        const entries: Array<ListedCertificate> = []
        let continuation: string | undefined
        do {
          const page = yield* list(continuation)
          entries.push(...page.certificates)
          continuation = page.continuation
        } while (continuation !== undefined)
        expect(entries).toHaveLength(60)
        for (const entry of entries) {
          const latest = yield* vault.getLatest(entry.name)
          expect(entry).toEqual({
            name: entry.name,
            x5t: latest.x5t,
            enabled: latest.enabled,
            tags: latest.tags,
            expiresAt: latest.expiresAt,
            updatedAt: expect.any(Date),
          })
          expect(entry.expiresAt).toBeInstanceOf(Date)
          expect(entry.x5t).toMatch(/^[A-Za-z0-9_-]{27}$/)
        }
        const byName = new Map(entries.map((e) => [e.name, e]))
        expect(byName.get(DISABLED)?.enabled).toBe(false)
        expect(byName.get(DISABLED)?.tags).toEqual({ t: `${DISABLED}-2` })
        expect(byName.get(OPERATOR_TAGGED)?.tags).toEqual({ env: "production", owner: "team-a" })
        expect(byName.get(UNTAGGED)?.tags).toEqual({})
        expect(byName.get("cert-00")).toMatchObject({ enabled: true, tags: { t: "cert-00" } })
        // The x5t is the latest version's (the disabled one has two versions).
        const versions = emulator.state.versions(LISTED, DISABLED) ?? []
        expect(versions).toHaveLength(2)
        expect(byName.get(DISABLED)?.x5t).toBe(versions.at(-1)?.x5t)
        expect(byName.get(DISABLED)?.x5t).not.toBe(versions[0]?.x5t)
      }),
    ),
  )

  it.live("updatedAt is when the certificate last changed, not when its latest version was created", () =>
    run(
      UPDATED,
      Effect.gen(function* () {
        const codec = yield* PfxCodec
        const vault = yield* Vault
        const material = yield* Effect.promise(() => makeMaterial(ca))
        const pfx = yield* codec.encode(material, { encoding: "modern", password: Redacted.make("") })
        const imported = yield* vault.importVersion({
          name: "retagged",
          pfx,
          password: Redacted.make(""),
          tags: {},
        })
        // Key Vault's times are whole seconds: change it in a later second than its creation.
        yield* Effect.sleep(`${1050 - (Date.now() % 1000)} millis`)
        yield* Effect.promise(() =>
          sdkFor(UPDATED).updateCertificateProperties("retagged", imported.versionId, {
            tags: { env: "prod" },
          }),
        )
        const list = yield* listOf
        const [entry] = (yield* list(undefined)).certificates
        expect(entry?.name).toBe("retagged")
        expect(entry?.tags).toEqual({ env: "prod" })
        expect(entry?.updatedAt?.getTime()).toBeGreaterThan(imported.createdAt.getTime())
      }),
    ),
  )

  it.live("an empty vault answers one page with no entries", () =>
    run(
      EMPTY,
      Effect.gen(function* () {
        const list = yield* listOf
        const mark = emulator.requests.mark()
        const page = yield* list(undefined)
        expect(page).toEqual({ certificates: [], continuation: undefined })
        expect(listRequests(EMPTY, mark)).toHaveLength(1)
      }),
    ),
  )

  it.live("without certificates/list: VaultForbidden naming certificates/list", () =>
    run(
      LISTED,
      Effect.gen(function* () {
        const list = yield* listOf
        emulator.rbac.deny(emulator.clientSecret.clientId, ["certificates/list"])
        const error = yield* Effect.flip(list(undefined)).pipe(
          Effect.ensuring(Effect.sync(() => emulator.rbac.reset())),
        )
        expect(error._tag).toBe("VaultForbidden")
        if (error._tag !== "VaultForbidden") return
        expect(error.operation).toBe("listCertificates")
        expect(error.permission).toBe("certificates/list")
        expect(error.refusal).toBe("permission")
        // The vault saw the request and refused it: a vault call, not an unsent one.
        expect(error.unsent).toBeUndefined()
        expect(error.message).toContain("certificates/list")
        expect(error.message).toContain("Microsoft.KeyVault/vaults/certificates/read")
        const recorder = yield* MetricsRecorder
        expect(recorder.count("vaultRequest", "listCertificates:forbidden")).toBe(1)
      }),
    ),
  )

  it.live("a refused token (401) is VaultForbidden that names no permission to grant", () =>
    run(
      LISTED,
      Effect.gen(function* () {
        const error = yield* listFailureWith(
          { kind: "status", status: 401, code: "Unauthorized", message: "AKV10032: Invalid issuer." },
          1,
        )
        expect(error._tag).toBe("VaultForbidden")
        if (error._tag !== "VaultForbidden") return
        // A grant would not help: the token itself was refused.
        expect(error.refusal).toBe("token")
        expect(error.permission).toBeUndefined()
        expect(error.message).toContain("refused the token")
        expect(error.message).not.toContain("certificates/list")
      }),
    ),
  )

  it.live(
    "a 429 that outlasts the SDK's retries is VaultThrottled with retryAfterMs; no retry of its own",
    () =>
      run(
        LISTED,
        Effect.gen(function* () {
          const mark = emulator.requests.mark()
          const error: VaultError = yield* listFailureWith(
            { kind: "throttle", retryAfterSeconds: 1 },
            "always",
          )
          expect(error._tag).toBe("VaultThrottled")
          if (error._tag !== "VaultThrottled") return
          expect(error.operation).toBe("listCertificates")
          expect(error.retryAfterMs).toBe(1000)
          // The SDK's one retry (this layer's maxRetries) and nothing more.
          expect(listRequests(LISTED, mark).map((r) => r.status)).toEqual([429, 429])
          const recorder = yield* MetricsRecorder
          expect(recorder.count("vaultThrottled")).toBe(2)
          expect(recorder.count("vaultRequest", "listCertificates:throttled")).toBe(1)
        }),
        { retry: { maxRetries: 1, retryDelayInMs: 20, maxRetryDelayInMs: 2000 } },
      ),
  )

  it.live("a continuation page is sent with the adapter's request timeout (the SDK sends it with none)", () =>
    run(
      LISTED,
      Effect.gen(function* () {
        const list = yield* listOf
        const first = yield* list(undefined)
        // Hold every later list request: only the adapter's timeout ends the call.
        const id = emulator.faults.add({
          operation: "list",
          vault: LISTED,
          times: "always",
          action: { kind: "hold", timeoutMs: 60_000 },
        })
        const error = yield* Effect.flip(list(first.continuation)).pipe(
          Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))),
        )
        expect(error._tag).toBe("VaultUnavailable")
        expect(error.operation).toBe("listCertificates")
        // The limit is named (it said only "aborted or timed out").
        expect(error.message).toContain("no answer within 0.3 s, the per-request timeout")
      }),
      { requestTimeoutMs: 300, retry: { maxRetries: 0 } },
    ),
  )

  it.live("a continuation that is not this vault's list is refused before any request", () =>
    run(
      LISTED,
      Effect.gen(function* () {
        const list = yield* listOf
        const mark = emulator.requests.mark()
        const others = [
          `${emulator.vault(EMPTY).url}/certificates?api-version=2025-07-01&$skiptoken=b2Zmc2V0OjI1&maxresults=25`,
          `${emulator.vault(LISTED).url}/secrets?api-version=2025-07-01`,
          "https://attacker.example/certificates",
          "offset:25",
        ]
        for (const continuation of others) {
          const error = yield* Effect.flip(list(continuation))
          expect(error._tag).toBe("VaultRequestRejected")
          if (error._tag !== "VaultRequestRejected") continue
          expect(error.code).toBe("InvalidContinuation")
          expect(error.message).toContain("pass undefined for the first page")
        }
        expect(emulator.requests.entries({ since: mark }).filter((r) => r.vault !== "entra")).toEqual([])
      }),
    ),
  )
})
