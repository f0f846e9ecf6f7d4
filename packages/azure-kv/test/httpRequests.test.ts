/**
 * `kvdeploy_vault_http_requests_total{operation,status}`: every HTTP request the adapter's SDK
 * clients send to Key Vault, counted per attempt, checked against the emulator's request log (the
 * ground truth: what the vault received). The real SDKs, the real pkcs12 codec, the in-memory
 * adapter of @kvdeploy/metrics.
 */
import type { TokenCredential } from "@azure/core-auth"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import {
  type DeployOutcome,
  PfxCodec,
  type TargetConfig,
  Vault,
  type VaultHttpOperation,
  vaultHttpStatusOf,
} from "@kvdeploy/core"
import { InMemoryAuditLog } from "@kvdeploy/core/test"
import { type Emulator, type RequestLogEntry, start } from "@kvdeploy/kv-emulator"
import { layerTest, MetricsSnapshot, vaultHttpRequests, vaultRequests } from "@kvdeploy/metrics"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fc from "fast-check"
import { vaultHttpOperationOf } from "../src/httpRequests.js"
import { credentialFor, deployOnce, fastReads, targetFor, vaultLayer } from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"

const VAULT = "httpcount"
let emulator: Emulator
let ca: Issuer
let credential: TokenCredential
let target: TargetConfig

beforeAll(async () => {
  emulator = await start({ vaults: [VAULT], warn: () => {} })
  ca = await makeCa()
  target = targetFor(emulator, VAULT, "any")
  credential = await Effect.runPromise(credentialFor(emulator, target))
})
afterAll(() => emulator?.stop())

/** A fresh adapter (new SDK clients: the first request is the challenge's) over in-memory catalogue metrics. */
const world = (options: Parameters<typeof vaultLayer>[3] = {}) =>
  vaultLayer(emulator, target, credential, options).pipe(
    Layer.provideMerge(Layer.mergeAll(layerTest, Pkcs12.layer, InMemoryAuditLog.layer)),
  )

/** The emulator's operation names as the series names them (the port's). */
const portName: Readonly<Record<string, VaultHttpOperation>> = {
  getLatest: "getLatest",
  getVersion: "getVersion",
  versions: "listVersions",
  list: "listCertificates",
  import: "importVersion",
  getSecret: "getVersionSecret",
  getDeleted: "getDeleted",
  recover: "recoverDeleted",
  getOperation: "getOperation",
}

type Tally = Record<string, number>

const tally = (keys: ReadonlyArray<string>): Tally => {
  const out: Tally = {}
  for (const k of keys) out[k] = (out[k] ?? 0) + 1
  return out
}

/** What the vault received since `since`, as `operation:status` (a dropped connection, status 0, is `no_response`). */
const received = (since: number): Tally =>
  tally(
    emulator.requests
      .entries({ vault: VAULT, since })
      .map(
        (e: RequestLogEntry) =>
          `${portName[e.operation] ?? "other"}:${vaultHttpStatusOf(e.dropped === true || e.status === 0 ? undefined : e.status)}`,
      ),
  )

/** A counter's series from the in-memory adapter, as `operation:status` -> value. */
const seriesOf = (snapshot: MetricsSnapshot["Service"], name: string): Tally => {
  const out: Tally = {}
  for (const [key, value] of snapshot.all()) {
    if (!key.startsWith(`${name}{`)) continue
    const labels = Object.fromEntries(
      [...key.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? "", m[2] ?? ""] as const),
    )
    out[`${labels.operation}:${labels.status}`] = value
  }
  return out
}

const importRequest = (name: string) =>
  Effect.gen(function* () {
    const codec = yield* PfxCodec
    const material = yield* Effect.promise(() => makeMaterial(ca))
    const pfx = yield* codec.encode(material, { encoding: "modern", password: Redacted.make("") })
    return { name, pfx, password: Redacted.make(""), tags: {} }
  })

describe("kvdeploy_vault_http_requests_total against the emulator's request log", () => {
  it.live(
    "a first deploy: 3 port calls, 4 HTTP requests (the challenge's 401 first), as the vault logged them",
    () =>
      Effect.gen(function* () {
        const since = emulator.requests.mark()
        const deployTarget = targetFor(emulator, VAULT, "http-deploy-app")
        const material = yield* Effect.promise(() => makeMaterial(ca))
        const outcome: DeployOutcome = yield* deployOnce(deployTarget, material, "id-http-deploy-app").pipe(
          fastReads,
        )
        expect(outcome._tag).toBe("Succeeded")
        const metrics = yield* MetricsSnapshot
        const http = seriesOf(metrics, vaultHttpRequests.name)
        expect(http).toEqual(received(since))
        expect(http).toEqual({
          "getLatest:401": 1,
          "getLatest:404": 1,
          "importVersion:200": 1,
          "getLatest:200": 1,
        })
        // The port-call series is unchanged: one per call, the challenge not among them.
        expect(seriesOf(metrics, vaultRequests.name)).toEqual({
          "getLatest:not_found": 1,
          "importVersion:ok": 1,
          "getLatest:ok": 1,
        })
      }).pipe(Effect.provide(world())),
  )

  it.live("an import throttled twice: 3 HTTP attempts (429, 429, 200) for one port call", () =>
    Effect.gen(function* () {
      const vault = yield* Vault
      const name = "http-throttled-app"
      // The challenge first, so that the import's attempts are the import's own.
      yield* Effect.flip(vault.getLatest(name))
      const since = emulator.requests.mark()
      const id = emulator.faults.add({
        operation: "import",
        vault: VAULT,
        name,
        times: 2,
        action: { kind: "throttle", retryAfterSeconds: 0 },
      })
      const version = yield* vault
        .importVersion(yield* importRequest(name))
        .pipe(Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))))
      expect(version.versionId).not.toBe("")
      const metrics = yield* MetricsSnapshot
      const http = seriesOf(metrics, vaultHttpRequests.name)
      const importOnly = (t: Tally) =>
        Object.fromEntries(Object.entries(t).filter(([k]) => k.startsWith("importVersion:")))
      expect(importOnly(http)).toEqual(received(since))
      expect(importOnly(http)).toEqual({ "importVersion:429": 2, "importVersion:200": 1 })
      expect(seriesOf(metrics, vaultRequests.name)["importVersion:ok"]).toBe(1)
      expect(metrics.value("kvdeploy_vault_throttled_total")).toBe(2)
    }).pipe(Effect.provide(world())),
  )

  it.live("a version list over 3 pages: 3 HTTP requests (plus the challenge) for one port call", () =>
    Effect.gen(function* () {
      const name = "http-many-versions-app"
      // 51 versions: pages of Key Vault's 25, 25 and 1.
      for (let i = 0; i < 51; i++) yield* Effect.promise(() => emulator.state.foreignImport(VAULT, name))
      const since = emulator.requests.mark()
      const vault = yield* Vault
      const versions = yield* vault.listVersions(name)
      expect(versions).toHaveLength(51)
      const metrics = yield* MetricsSnapshot
      const http = seriesOf(metrics, vaultHttpRequests.name)
      expect(http).toEqual(received(since))
      expect(http).toEqual({ "listVersions:401": 1, "listVersions:200": 3 })
      expect(seriesOf(metrics, vaultRequests.name)).toEqual({ "listVersions:ok": 1 })
    }).pipe(Effect.provide(world())),
  )

  it.live(
    "a dropped connection the SDK retried is no_response; the secret client's and the operation poller's requests are counted too",
    () =>
      Effect.gen(function* () {
        const vault = yield* Vault
        const name = "http-mixed-app"
        const since = emulator.requests.mark()
        const imported = yield* vault.importVersion(yield* importRequest(name))
        const id = emulator.faults.add({
          operation: "getLatest",
          vault: VAULT,
          name,
          times: 1,
          action: { kind: "drop" },
        })
        yield* vault.getLatest(name).pipe(Effect.ensuring(Effect.sync(() => emulator.faults.remove(id))))
        yield* vault.getVersionSecret(name, imported.versionId)
        // The SDK's operation poller reads the latest certificate, then the pending operation.
        const getOperation = vault.getOperation
        if (getOperation === undefined) return expect.fail("the adapter has getOperation")
        yield* getOperation(name)
        const metrics = yield* MetricsSnapshot
        const http = seriesOf(metrics, vaultHttpRequests.name)
        const log = received(since)
        expect(http).toEqual(log)
        expect(http).toEqual({
          // Two clients, two challenges: the certificates client's (on the import) and the secrets client's.
          "importVersion:401": 1,
          "importVersion:200": 1,
          // The dropped attempt, then the SDK's retry; the second getLatest:200 is getOperation's
          // poller reading the latest certificate before the pending operation (404: none).
          "getLatest:no_response": 1,
          "getLatest:200": 2,
          "getVersionSecret:401": 1,
          "getVersionSecret:200": 1,
          "getOperation:404": 1,
        })
        expect(seriesOf(metrics, vaultRequests.name)).toEqual({
          "importVersion:ok": 1,
          "getLatest:ok": 1,
          "getVersionSecret:ok": 1,
          "getOperation:not_found": 1,
        })
      }).pipe(Effect.provide(world())),
  )

  it.live("recordMetrics: false records no HTTP request either", () =>
    Effect.gen(function* () {
      const vault = yield* Vault
      yield* Effect.flip(vault.getLatest("http-unrecorded-app"))
      expect(seriesOf(yield* MetricsSnapshot, vaultHttpRequests.name)).toEqual({})
    }).pipe(Effect.provide(world({ recordMetrics: false }))),
  )
})

describe("the operation label is read from method and path, and stays bounded", () => {
  const base = "https://myvault.vault.azure.net"
  it("names each request the adapter sends by its port operation", () => {
    const cases: ReadonlyArray<readonly [string, string, VaultHttpOperation]> = [
      ["GET", "/certificates?api-version=2025-07-01&maxresults=25", "listCertificates"],
      ["GET", "/certificates/api-prod/?api-version=2025-07-01", "getLatest"],
      ["GET", "/certificates/api-prod?api-version=2025-07-01", "getLatest"],
      ["GET", "/certificates/api-prod/0123456789abcdef0123456789abcdef", "getVersion"],
      ["GET", "/certificates/api-prod/versions?api-version=2025-07-01", "listVersions"],
      [
        "GET",
        "/certificates/api-prod/versions?api-version=2025-07-01&$skiptoken=abc&maxresults=25",
        "listVersions",
      ],
      ["GET", "/certificates/api-prod/pending", "getOperation"],
      ["POST", "/certificates/api-prod/import?api-version=2025-07-01", "importVersion"],
      ["GET", "/secrets/api-prod/0123456789abcdef0123456789abcdef", "getVersionSecret"],
      ["GET", "/secrets/api-prod/", "getVersionSecret"],
      ["GET", "/deletedcertificates/api-prod", "getDeleted"],
      ["POST", "/deletedcertificates/api-prod/recover", "recoverDeleted"],
      ["GET", "/certificates/api-prod/policy", "other"],
      ["PATCH", "/certificates/api-prod/", "other"],
      ["DELETE", "/certificates/api-prod", "other"],
      ["GET", "/keys/api-prod/", "other"],
      ["GET", "/", "other"],
    ]
    for (const [method, path, operation] of cases)
      expect(vaultHttpOperationOf(method, `${base}${path}`), `${method} ${path}`).toBe(operation)
  })

  it("any method and URL gives one of the port's operation names or other, never a name from the URL", () => {
    const allowed = new Set<string>([...Object.values(portName), "other"])
    fc.assert(
      fc.property(
        fc.string(),
        fc.oneof(fc.webUrl({ withQueryParameters: true }), fc.string()),
        (method, url) => {
          expect(allowed.has(vaultHttpOperationOf(method, url))).toBe(true)
        },
      ),
    )
  })

  it("the status is a named code, a class, no_response or other", () => {
    expect(vaultHttpStatusOf(undefined)).toBe("no_response")
    expect(vaultHttpStatusOf(429)).toBe("429")
    expect(vaultHttpStatusOf(401)).toBe("401")
    expect(vaultHttpStatusOf(418)).toBe("4xx")
    expect(vaultHttpStatusOf(599)).toBe("5xx")
    expect(vaultHttpStatusOf(0)).toBe("other")
    expect(vaultHttpStatusOf(999)).toBe("other")
    fc.assert(
      fc.property(fc.oneof(fc.integer(), fc.double()), (status) => {
        expect(vaultHttpStatusOf(status)).toMatch(/^(\d{3}|[1-5]xx|other)$/)
      }),
    )
  })
})
