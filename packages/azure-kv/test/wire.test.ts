/**
 * The adapter's side of the wire, with the real SDKs over real HTTPS to a
 * local listener that records every request byte for byte: the import policy
 * reaches the wire (through the challenge), an import is never sent twice
 * when its outcome is unknown, and real SDK failures map to the right errors.
 */
import type { ServerResponse } from "node:http"
import type { TokenCredential } from "@azure/core-auth"
import { AggregateAuthenticationError, ClientSecretCredential, EnvironmentCredential } from "@azure/identity"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import type { CertificateMaterial, ImportRequest } from "@kvdeploy/core"
import { isRetriableRead, PfxCodec, Vault } from "@kvdeploy/core"
import { closedPort, MetricsRecorder, RecordingMetrics, withProcessEnv } from "@kvdeploy/core/test"
import { TokenRequestTimedOut } from "@kvdeploy/credentials/tokenErrors"
import { start as startEmulator } from "@kvdeploy/kv-emulator"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as AzureKeyVault from "../src/index.js"
import {
  json,
  keyVaultError,
  type Listener,
  startListener,
  staticCredential,
  type WireRequest,
} from "./support/listener.js"
import { type Issuer, loopbackTls, makeCa, makeMaterial, toPem, x5tOf } from "./support/pki.js"

let listener: Listener
let ca: Issuer
let rsaCa: Issuer

beforeAll(async () => {
  listener = await startListener(await loopbackTls())
  ca = await makeCa()
  rsaCa = await makeCa("CN=kvdeploy azure-kv Test RSA CA", "RSA-2048")
})
afterAll(async () => {
  await listener.close()
})

const vaultLayer = (options: Partial<AzureKeyVault.AzureKeyVaultOptions> = {}) =>
  AzureKeyVault.layer({
    vaultUrl: listener.url,
    credential: staticCredential,
    customCloud: true,
    trustedCaPem: listener.ca,
    retry: { maxRetries: 2, retryDelayInMs: 5, maxRetryDelayInMs: 20 },
    ...options,
  }).pipe(Layer.provideMerge(Layer.mergeAll(RecordingMetrics.layer, Pkcs12.layer)))

/** A loopback address nobody listens at: connections to it are refused. */
const refusing = `https://127.0.0.1:${await closedPort()}`

/** An adapter for a vault nobody listens at (connections refused), one quick SDK retry. */
const refusingVaultLayer = AzureKeyVault.layer({
  vaultUrl: refusing,
  credential: staticCredential,
  customCloud: true,
  retry: { maxRetries: 1, retryDelayInMs: 5, maxRetryDelayInMs: 10 },
}).pipe(Layer.provideMerge(Layer.mergeAll(RecordingMetrics.layer, Pkcs12.layer)))

const run = <A, E>(
  effect: Effect.Effect<A, E, Vault | PfxCodec | MetricsRecorder>,
  options?: Partial<AzureKeyVault.AzureKeyVaultOptions>,
) => effect.pipe(Effect.provide(vaultLayer(options)))

/** How `getLatest(name)` fails when the vault answers as `answer` does (the wire log emptied first). */
const getLatestFailure = (
  answer: (res: ServerResponse) => void,
  options?: Partial<AzureKeyVault.AzureKeyVaultOptions>,
  name = "fails",
) =>
  Effect.gen(function* () {
    listener.log.length = 0
    listener.answer = (_req, res) => answer(res)
    const vault = yield* Vault
    return yield* Effect.flip(vault.getLatest(name))
  }).pipe((e) => run(e, options))

const pfxOf = (material: CertificateMaterial) =>
  Effect.flatMap(Effect.service(PfxCodec), (codec) =>
    codec.encode(material, { encoding: "modern", password: Redacted.make("") }),
  )

const bundle = async (
  name: string,
  version: string,
  material: CertificateMaterial,
  tags: Record<string, string>,
) => ({
  id: `${listener.url}/certificates/${name}/${version}`,
  kid: `${listener.url}/keys/${name}/${version}`,
  sid: `${listener.url}/secrets/${name}/${version}`,
  x5t: await x5tOf(material.leaf),
  cer: Buffer.from(material.leaf).toString("base64"),
  attributes: {
    enabled: true,
    created: 1_700_000_000,
    updated: 1_700_000_000,
    recoveryLevel: "Recoverable+Purgeable",
  },
  tags,
})

const authorized = (method: string, pathPrefix: string): WireRequest[] =>
  listener.log.filter((r) => r.authorized && r.method === method && r.path.startsWith(pathPrefix))

describe("import policy on the wire", () => {
  it.live(
    "EC P-256: content type, exportable EC key on P-256, reuse_key false, no AutoRenew; body survives the challenge",
    () =>
      Effect.gen(function* () {
        listener.log.length = 0
        const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
        const reply = yield* Effect.promise(() => bundle("wire-ec", "v1", material, { a: "b" }))
        listener.answer = (_req, res) => json(res, 200, reply)
        const version = yield* run(
          Effect.gen(function* () {
            const pfx = yield* pfxOf(material)
            const vault = yield* Vault
            return yield* vault.importVersion({
              name: "wire-ec",
              pfx,
              password: Redacted.make(""),
              tags: { a: "b" },
            })
          }),
        )
        expect(version.versionId).toBe("v1")
        expect(version.x5t).toBe(reply.x5t)
        // The challenge: first request body-less and unauthorised, then the real one.
        const imports = listener.log.filter((r) => r.path.startsWith("/certificates/wire-ec/import"))
        expect(imports.map((r) => [r.authorized, r.body.length > 0])).toEqual([
          [false, false],
          [true, true],
        ])
        const wire = JSON.parse(imports[1]?.body ?? "{}") as Record<string, unknown>
        expect(wire.policy).toEqual({
          key_props: { exportable: true, kty: "EC", crv: "P-256", reuse_key: false },
          secret_props: { contentType: "application/x-pkcs12" },
          lifetime_actions: [
            { trigger: { lifetime_percentage: 80 }, action: { action_type: "EmailContacts" } },
          ],
          issuer: { name: "Unknown" },
          attributes: { enabled: true },
        })
        expect(wire.attributes).toEqual({ enabled: true })
        expect(wire.tags).toEqual({ a: "b" })
        expect(wire.pwd).toBe("")
        expect(typeof wire.value).toBe("string")
        expect(JSON.stringify(wire.policy)).not.toContain("AutoRenew")
        // The private header that carries the policy to the pipeline never reaches the wire.
        for (const r of listener.log) expect(r.headers[AzureKeyVault.importPolicyHeader]).toBeUndefined()
      }),
  )

  it.live("RSA 2048, not exportable: kty RSA, key_size 2048, exportable false", () =>
    Effect.gen(function* () {
      listener.log.length = 0
      const material = yield* Effect.promise(() => makeMaterial(rsaCa, "RSA-2048"))
      const reply = yield* Effect.promise(() => bundle("wire-rsa", "v1", material, {}))
      listener.answer = (_req, res) => json(res, 200, reply)
      yield* run(
        Effect.gen(function* () {
          const pfx = yield* pfxOf(material)
          const vault = yield* Vault
          return yield* vault.importVersion({
            name: "wire-rsa",
            pfx,
            password: Redacted.make(""),
            tags: {},
            exportable: false,
          })
        }),
      )
      const [sent] = authorized("POST", "/certificates/wire-rsa/import")
      const wire = JSON.parse(sent?.body ?? "{}") as { policy?: { key_props?: unknown } }
      expect(wire.policy?.key_props).toEqual({
        exportable: false,
        kty: "RSA",
        key_size: 2048,
        reuse_key: false,
      })
    }),
  )

  it.live("key facts stated on the request are used as they are (no PFX decode)", () =>
    Effect.gen(function* () {
      listener.log.length = 0
      const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
      const reply = yield* Effect.promise(() => bundle("wire-declared", "v1", material, {}))
      listener.answer = (_req, res) => json(res, 200, reply)
      yield* run(
        Effect.gen(function* () {
          const pfx = yield* pfxOf(material)
          const vault = yield* Vault
          // Deliberately not the PFX's curve, to see which source the policy came from.
          const request: ImportRequest = {
            name: "wire-declared",
            pfx,
            password: Redacted.make(""),
            tags: {},
            keyFacts: { keyType: "EC", curve: "P-384" },
          }
          return yield* vault.importVersion(request)
        }),
      )
      const [sent] = authorized("POST", "/certificates/wire-declared/import")
      const wire = JSON.parse(sent?.body ?? "{}") as { policy?: { key_props?: unknown } }
      expect(wire.policy?.key_props).toEqual({ exportable: true, kty: "EC", crv: "P-384", reuse_key: false })
    }),
  )
})

describe("an import whose outcome is unknown is never sent again", () => {
  const importOnce = (name: string) =>
    Effect.gen(function* () {
      const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
      const pfx = yield* pfxOf(material)
      const vault = yield* Vault
      const error = yield* Effect.flip(
        vault.importVersion({ name, pfx, password: Redacted.make(""), tags: {} }),
      )
      const recorder = yield* MetricsRecorder
      return { error, pfxBase64: Buffer.from(pfx).toString("base64"), recorder }
    })

  it.live("connection dropped after the body was read: one import on the wire, VaultAmbiguous", () =>
    Effect.gen(function* () {
      listener.log.length = 0
      listener.answer = (_req, res) => res.socket?.destroy()
      const { error, pfxBase64, recorder } = yield* run(importOnce("drop"))
      expect(error._tag).toBe("VaultAmbiguous")
      expect(authorized("POST", "/certificates/drop/import")).toHaveLength(1)
      expect(recorder.count("vaultRequest", "importVersion:ambiguous")).toBe(1)
      // Key material never in the error (the SDK's RestError holds the request body; it is not kept).
      expect(JSON.stringify(error)).not.toContain(pfxBase64.slice(0, 40))
      expect(String(error.message)).not.toContain(pfxBase64.slice(0, 40))
      expect(JSON.stringify(error.cause ?? {})).not.toContain(pfxBase64.slice(0, 40))
    }),
  )

  it.live(
    "500 after the body was sent: one import on the wire (the SDK would retry it three times), VaultAmbiguous",
    () =>
      Effect.gen(function* () {
        listener.log.length = 0
        listener.answer = (_req, res) => keyVaultError(res, 500, "InternalServerError", "boom")
        const { error } = yield* run(importOnce("five-hundred"))
        expect(error._tag).toBe("VaultAmbiguous")
        expect(error.message).toContain("500")
        expect(authorized("POST", "/certificates/five-hundred/import")).toHaveLength(1)
      }),
  )

  it.live(
    "429 with Retry-After is retried by the SDK (Key Vault did not process it) and counted as a throttle",
    () =>
      Effect.gen(function* () {
        listener.log.length = 0
        const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
        const reply = yield* Effect.promise(() => bundle("throttled", "v9", material, {}))
        let n = 0
        listener.answer = (_req, res) =>
          n++ === 0
            ? keyVaultError(res, 429, "Throttled", "Too many requests", undefined, { "retry-after": "0" })
            : json(res, 200, reply)
        const result = yield* run(
          Effect.gen(function* () {
            const pfx = yield* pfxOf(material)
            const vault = yield* Vault
            const version = yield* vault.importVersion({
              name: "throttled",
              pfx,
              password: Redacted.make(""),
              tags: {},
            })
            // Give the throttle observer's fiber a turn.
            yield* Effect.sleep("10 millis")
            return { version, recorder: yield* MetricsRecorder }
          }),
        )
        expect(result.version.versionId).toBe("v9")
        const sent = authorized("POST", "/certificates/throttled/import")
        expect(sent).toHaveLength(2)
        // Both attempts carry the policy.
        for (const r of sent) expect((JSON.parse(r.body) as { policy?: unknown }).policy).toBeDefined()
        expect(result.recorder.count("vaultThrottled")).toBe(1)
        expect(result.recorder.count("vaultRequest", "importVersion:ok")).toBe(1)
      }),
  )

  it.live(
    "recordMetrics: false records nothing (for compositions where core's deploy program counts the calls)",
    () =>
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
        const reply = yield* Effect.promise(() => bundle("quiet", "v1", material, {}))
        let n = 0
        listener.answer = (_req, res) =>
          n++ === 0
            ? keyVaultError(res, 429, "Throttled", "Too many requests", undefined, { "retry-after": "0" })
            : json(res, 200, reply)
        const recorder = yield* run(
          Effect.gen(function* () {
            const pfx = yield* pfxOf(material)
            const vault = yield* Vault
            yield* vault.importVersion({ name: "quiet", pfx, password: Redacted.make(""), tags: {} })
            yield* Effect.sleep("10 millis")
            return yield* MetricsRecorder
          }),
          { recordMetrics: false },
        )
        expect(n).toBe(2)
        expect(recorder.events()).toEqual([])
      }),
  )

  it.live(
    "no token: a refused credential is VaultForbidden (credential), the identity provider's outage VaultUnavailable; nothing was sent",
    () =>
      Effect.gen(function* () {
        const failingWith = (
          name: string,
          statusCode: number | undefined,
          message: string,
        ): TokenCredential => ({
          getToken: async () => {
            const e = Object.assign(new Error(message), statusCode === undefined ? {} : { statusCode })
            e.name = name
            throw e
          },
        })
        const importWith = (credential: TokenCredential, name: string) =>
          importOnce(name).pipe(
            Effect.provide(
              AzureKeyVault.layer({
                vaultUrl: listener.url,
                credential,
                customCloud: true,
                trustedCaPem: listener.ca,
              }).pipe(Layer.provideMerge(Layer.mergeAll(RecordingMetrics.layer, Pkcs12.layer))),
            ),
          )
        listener.log.length = 0
        const { error: refused, recorder } = yield* importWith(
          failingWith("AuthenticationError", 401, "AADSTS7000215: Invalid client secret provided."),
          "no-token",
        )
        // Counted as no token, not as the vault's refusal.
        expect(recorder.events()).toContainEqual({ series: "vaultRequest", label: "importVersion:no_token" })
        expect(refused._tag).toBe("VaultForbidden")
        expect(refused._tag === "VaultForbidden" && refused.refusal).toBe("credential")
        expect(refused.message).toContain("no token")
        expect(refused.message).toContain("AADSTS7000215")
        // Only the body-less challenge request reached the wire.
        expect(listener.log.map((r) => [r.authorized, r.body.length])).toEqual([[false, 0]])
        const unavailable = (yield* importWith(
          failingWith(
            "CredentialUnavailableError",
            undefined,
            "ManagedIdentityCredential: no managed identity endpoint",
          ),
          "no-identity",
        )).error
        expect(unavailable._tag === "VaultForbidden" && unavailable.refusal).toBe("credential")
        const { error: outage, recorder: outageRecorder } = yield* importWith(
          failingWith("AuthenticationError", 503, "the authority is unavailable"),
          "authority-outage",
        )
        expect(outage._tag).toBe("VaultUnavailable")
        expect(outage.message).toContain(
          "the identity provider is unavailable or throttling for now (it answered 503)",
        )
        // Counted as the identity provider's outage, not as the vault's.
        expect(outageRecorder.events()).toContainEqual({
          series: "vaultRequest",
          label: "importVersion:identity_unavailable",
        })
        // MSAL's transient codes come without a status: an outage for now, not a refused credential.
        const transient = (yield* importWith(
          failingWith(
            "AuthenticationRequiredError",
            undefined,
            "temporarily_unavailable: AADSTS90033: A transient error has occurred. Please try again.",
          ),
          "authority-transient",
        )).error
        expect(transient._tag).toBe("VaultUnavailable")
        expect(transient.message).toContain("unavailable or throttling for now")
        // A refusal whose text happens to name "Throttle Labs", and a chain's aggregate that mixes a
        // 503 into its text, are refused credentials, not outages.
        const named = (yield* importWith(
          failingWith(
            "AuthenticationRequiredError",
            400,
            "unauthorized_client: AADSTS700016: Application x was not found in the directory 'Throttle Labs'",
          ),
          "authority-refusal-named",
        )).error
        expect(named._tag === "VaultForbidden" && named.refusal).toBe("credential")
        const chain = (yield* importWith(
          failingWith(
            "AggregateAuthenticationError",
            undefined,
            "ChainedTokenCredential failed: ManagedIdentityCredential: server_error: Http status code: 503",
          ),
          "chain-aggregate",
        )).error
        expect(chain._tag === "VaultForbidden" && chain.refusal).toBe("credential")
        // The real @azure/identity, its authority unreachable (nothing listens at `refusing`); the tenant
        // is the one the listener's challenge names (another would be refused as a credential problem).
        const unreachable = (yield* importWith(
          new ClientSecretCredential("tenant-1", "00000000-0000-0000-0000-000000000002", "secret", {
            authorityHost: refusing,
            disableInstanceDiscovery: true,
          }),
          "authority-unreachable",
        )).error
        expect(unreachable._tag, unreachable.message).toBe("VaultUnavailable")
        expect(unreachable.message).toContain("the identity provider could not be reached")
        // A custom cloud's authority (the emulator's Entra) that does not know the tenant: MSAL reads
        // the tenant's OpenID configuration first and gets 400 invalid_tenant, which ends in the same
        // error as an outage (retried as one): the reason names the tenant to check as well.
        const entra = yield* Effect.promise(() => startEmulator({ vaults: [], warn: () => {} }))
        const unknownTenant = (yield* importWith(
          new ClientSecretCredential("tenant-1", "00000000-0000-0000-0000-000000000002", "secret", {
            authorityHost: entra.authorityHost,
            disableInstanceDiscovery: true,
            tlsOptions: { ca: entra.caPem },
          } as ConstructorParameters<typeof ClientSecretCredential>[3]),
          "authority-unknown-tenant",
        ).pipe(Effect.ensuring(Effect.promise(() => entra.stop())))).error
        expect(unknownTenant._tag, unknownTenant.message).toBe("VaultUnavailable")
        expect(unknownTenant.message).toContain(
          "could not be reached or did not serve the tenant's OpenID configuration (as for a tenant it does not know: check AZURE_TENANT_ID)",
        )
        // EnvironmentCredential (DefaultAzureCredential's first source) turns any failure into an
        // AuthenticationError of status 400 of its own, with the failure's text: judged by that text.
        // The real one, its authority unreachable:
        const environmentUnreachable = (yield* withProcessEnv(
          {
            AZURE_TENANT_ID: "tenant-1",
            AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000002",
            AZURE_CLIENT_SECRET: "secret",
          },
          Effect.suspend(() =>
            importWith(
              new EnvironmentCredential({ authorityHost: refusing, disableInstanceDiscovery: true }),
              "environment-unreachable",
            ),
          ),
        )).error
        expect(environmentUnreachable._tag, environmentUnreachable.message).toBe("VaultUnavailable")
        expect(environmentUnreachable.message).toContain("the identity provider could not be reached")
        // Its wrapped outages and refusals: packages/credentials/test/environmentWrapped.test.ts.
        // Each says its request never reached the vault, so no outcome counts it as a vault call.
        expect(
          [refused, unavailable, outage, transient, named, chain, unreachable, environmentUnreachable].map(
            (e) => e.unsent,
          ),
        ).toEqual(Array(8).fill(true))
        // @azure/identity retried an answered 429 or 5xx already (its pipeline's retry policy, IMDS's
        // own), or MSAL answered from its throttling cache: the deploy program does not retry such a
        // read again (one retry loop, not 4 identity requests for each of its 5 attempts). Nor one
        // that ran out its time limit. One that could not be reached is retried (IMDS's retry
        // policy leaves refused connections alone).
        const timedOut = (yield* importWith(
          {
            getToken: async () => {
              throw new TokenRequestTimedOut(50, undefined)
            },
          },
          "token-timed-out",
        )).error
        expect(timedOut._tag).toBe("VaultUnavailable")
        expect(timedOut.message).toContain(
          "no token for the vault (nothing was sent): the token request gave no token within 50 ms",
        )
        // The default chain: the source that reached its endpoint and got no token from it is named,
        // not the chain's "refused" (the others were not configured).
        const notConfigured = Object.assign(new Error("EnvironmentCredential is unavailable."), {
          name: "CredentialUnavailableError",
        })
        const noToken = Object.assign(new Error('Response had no "expiresOn" property.'), {
          name: "AuthenticationRequiredError",
        })
        const chainBroken = (yield* importWith(
          {
            getToken: async () => {
              throw new AggregateAuthenticationError(
                [notConfigured, noToken],
                "ChainedTokenCredential failed",
              )
            },
          },
          "chain-broken-answer",
        )).error
        expect(chainBroken._tag, chainBroken.message).toBe("VaultUnavailable")
        expect(chainBroken.message).toContain(
          "the identity endpoint answered, but not with a token (its answer had no access token or no expiry",
        )
        for (const e of [outage, transient, timedOut, chainBroken]) expect(e.retried, e.message).toBe(true)
        for (const e of [unreachable, unknownTenant, environmentUnreachable])
          expect(e.retried, e.message).toBeUndefined()
        // An identity endpoint's error page comes whole in the library's message: its start is kept.
        const page = `server_error: <html>${"<p>maintenance</p>".repeat(12_000)}</html>`
        const paged = (yield* importWith(failingWith("AuthenticationError", 503, page), "authority-page"))
          .error
        expect(paged._tag).toBe("VaultUnavailable")
        expect(paged.message).toContain("(it answered 503): server_error: <html><p>maintenance")
        expect(paged.message).toMatch(/… \(\d+ more characters not shown\)$/)
        expect(paged.message.length).toBeLessThan(1_300)
        const refusedPage = (yield* importWith(
          failingWith("AuthenticationError", 401, `AADSTS7000215: ${"x".repeat(50_000)}`),
          "refused-page",
        )).error
        expect(refusedPage._tag === "VaultForbidden" && refusedPage.refusal).toBe("credential")
        expect(refusedPage.message.length).toBeLessThan(1_300)
      }),
  )

  it.live("connection refused: nothing was sent, VaultUnavailable (definite) even for an import", () =>
    Effect.gen(function* () {
      const { error } = yield* importOnce("refused").pipe(Effect.provide(refusingVaultLayer))
      expect(error._tag).toBe("VaultUnavailable")
      expect(error.message).toContain("ECONNREFUSED")
    }),
  )
})

describe("Key Vault errors through the real SDK", () => {
  const getLatestError = (
    status: number,
    code: string,
    message: string,
    inner?: string,
    headers?: Record<string, string>,
  ) => getLatestFailure((res) => keyVaultError(res, status, code, message, inner, headers), {}, "errs")

  it.live("404 CertificateNotFound -> VaultNotFound", () =>
    Effect.gen(function* () {
      const error = yield* getLatestError(
        404,
        "CertificateNotFound",
        "A certificate with (name/id) errs was not found in this key vault.",
      )
      expect(error._tag).toBe("VaultNotFound")
    }),
  )

  it.live(
    "a 404 to the latest read maps as the SDK's own 404 error does (one request, counted not_found)",
    () =>
      Effect.gen(function* () {
        const message = "A certificate with (name/id) errs was not found in this key vault."
        listener.answer = (_req, res) =>
          keyVaultError(res, 404, "CertificateNotFound", message, "InnerNotFound", {
            "x-ms-request-id": "req-404",
            "retry-after": "2",
          })
        const vault = yield* Vault
        const before = listener.log.length
        const latest = yield* Effect.flip(vault.getLatest("errs"))
        // The request went out once (the challenge aside: a new client's first request is unauthorised).
        expect(listener.log.slice(before).filter((r) => r.authorized && r.method === "GET")).toHaveLength(1)
        // A versioned read's 404 is still the SDK deserialiser's RestError: the same facts either way.
        const versioned = yield* Effect.flip(vault.getVersion("errs", "0123456789abcdef"))
        expect(latest._tag).toBe("VaultNotFound")
        expect(versioned._tag).toBe("VaultNotFound")
        const facts = (e: typeof latest) => {
          const cause = e.cause as AzureKeyVault.KeyVaultRequestFailure
          return {
            tag: e._tag,
            message: e.message,
            name: cause.name,
            causeMessage: cause.message,
            statusCode: cause.statusCode,
            code: cause.code,
            innerCode: cause.innerCode,
            requestId: cause.requestId,
            retryAfterMs: cause.retryAfterMs,
          }
        }
        expect(facts(latest)).toEqual({ ...facts(versioned), message: facts(latest).message })
        expect(facts(latest)).toMatchObject({
          name: "RestError",
          causeMessage: message,
          statusCode: 404,
          code: "CertificateNotFound",
          innerCode: "InnerNotFound",
          requestId: "req-404",
          retryAfterMs: 2000,
        })
        expect(latest.message).toContain(message)
        const recorder = yield* MetricsRecorder
        expect(recorder.count("vaultRequest", "getLatest:not_found")).toBe(1)
        expect(recorder.count("vaultRequest", "getVersion:not_found")).toBe(1)
      }).pipe((e) => run(e)),
  )

  it.live("a 404 to the latest read without a Key Vault error body is still VaultNotFound", () =>
    Effect.gen(function* () {
      listener.answer = (_req, res) => {
        res.writeHead(404, { "content-type": "text/plain" })
        res.end("no such thing")
      }
      const vault = yield* Vault
      const error = yield* Effect.flip(vault.getLatest("errs"))
      expect(error._tag).toBe("VaultNotFound")
      expect((error.cause as AzureKeyVault.KeyVaultRequestFailure).statusCode).toBe(404)
      const recorder = yield* MetricsRecorder
      expect(recorder.count("vaultRequest", "getLatest:not_found")).toBe(1)
    }).pipe((e) => run(e)),
  )

  it.live("403 Forbidden -> VaultForbidden naming the permission, data action and role", () =>
    Effect.gen(function* () {
      const error = yield* getLatestError(
        403,
        "Forbidden",
        "Caller is not authorized to perform action on resource.",
      )
      expect(error._tag).toBe("VaultForbidden")
      if (error._tag !== "VaultForbidden") return
      expect(error.permission).toBe("certificates/get")
      expect(error.message).toContain("Microsoft.KeyVault/vaults/certificates/read")
      expect(error.message).toContain("Key Vault Certificate User")
      expect(error.message).toContain("Caller is not authorized")
    }),
  )

  it.live("403 ForbiddenByFirewall -> VaultForbidden about the network, not RBAC", () =>
    Effect.gen(function* () {
      const error = yield* getLatestError(
        403,
        "Forbidden",
        "Client address is not authorized and caller is not a trusted service.",
        "ForbiddenByFirewall",
      )
      expect(error._tag).toBe("VaultForbidden")
      if (error._tag !== "VaultForbidden") return
      expect(error.permission).toBe("network access")
      expect(error.message).toContain("firewall")
      expect(error.message).not.toContain("RBAC")
    }),
  )

  it.live(
    "403 ForbiddenByConnection (public network access disabled) -> VaultForbidden about the network, not RBAC",
    () =>
      Effect.gen(function* () {
        const error = yield* getLatestError(
          403,
          "Forbidden",
          "Connection is not an approved private link and caller was ignored because bypass is not set to 'AzureServices' and PublicNetworkAccess is set to 'Disabled'.",
          "ForbiddenByConnection",
        )
        expect(error._tag).toBe("VaultForbidden")
        if (error._tag !== "VaultForbidden") return
        expect(error.refusal).toBe("network")
        expect(error.permission).toBe("network access")
        expect(error.message).toContain("private endpoint")
        expect(error.message).toContain("public network access is disabled")
        expect(error.message).not.toMatch(/grant|RBAC|role/i)
      }),
  )

  it.live("403 SecretDisabled -> VaultForbidden about the disabled version, not a missing grant", () =>
    Effect.gen(function* () {
      // The inner code decides, whatever the message says.
      const other = yield* getLatestError(
        403,
        "Forbidden",
        "Operation get is not permitted for this version.",
        "SecretDisabled",
      )
      expect(other._tag === "VaultForbidden" && other.refusal).toBe("disabled")
      const error = yield* getLatestError(
        403,
        "Forbidden",
        "Operation get is not allowed on a disabled secret.",
        "SecretDisabled",
      )
      expect(error._tag).toBe("VaultForbidden")
      if (error._tag !== "VaultForbidden") return
      expect(error.refusal).toBe("disabled")
      expect(error.permission).toBeUndefined()
      expect(error.message).toContain("the version is disabled")
      expect(error.message).not.toContain("grant")
    }),
  )

  it.live("429 that outlasts the SDK's retries -> VaultThrottled with retryAfterMs", () =>
    Effect.gen(function* () {
      listener.log.length = 0
      const error = yield* getLatestError(429, "Throttled", "Rate limit exceeded", undefined, {
        "retry-after": "0",
      })
      expect(error._tag).toBe("VaultThrottled")
      if (error._tag !== "VaultThrottled") return
      expect(error.retryAfterMs).toBe(0)
      // The SDK retried it already: the deploy program must not retry it again.
      expect(error.retried).toBe(true)
      // 1 attempt + maxRetries (2)
      expect(authorized("GET", "/certificates/errs/")).toHaveLength(3)
    }),
  )

  it.live("400 BadParameter -> VaultRequestRejected with the code", () =>
    Effect.gen(function* () {
      const error = yield* getLatestError(400, "BadParameter", "Property policy has invalid value")
      expect(error._tag).toBe("VaultRequestRejected")
      if (error._tag !== "VaultRequestRejected") return
      expect(error.code).toBe("BadParameter")
    }),
  )

  it.live("503 on a read, after the SDK's retries -> VaultUnavailable, not ambiguous", () =>
    Effect.gen(function* () {
      listener.log.length = 0
      const error = yield* getLatestError(503, "ServiceUnavailable", "try later")
      expect(error._tag).toBe("VaultUnavailable")
      expect(authorized("GET", "/certificates/errs/")).toHaveLength(3)
    }),
  )

  it.live("409 ObjectIsDeletedButRecoverable on import -> VaultConflictSoftDeleted with the remedy", () =>
    Effect.gen(function* () {
      listener.answer = (_req, res) =>
        keyVaultError(
          res,
          409,
          "Conflict",
          "Certificate gone is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the certificate can only be recovered or purged.",
          "ObjectIsDeletedButRecoverable",
        )
      const error = yield* run(
        Effect.gen(function* () {
          const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
          const pfx = yield* pfxOf(material)
          const vault = yield* Vault
          return yield* Effect.flip(
            vault.importVersion({ name: "gone", pfx, password: Redacted.make(""), tags: {} }),
          )
        }),
      )
      expect(error._tag).toBe("VaultConflictSoftDeleted")
      expect(error.message).toContain("recover")
    }),
  )

  it.live("403 on the backing secret -> VaultForbidden naming secrets/get and its data action", () =>
    Effect.gen(function* () {
      listener.answer = (_req, res) =>
        keyVaultError(res, 403, "Forbidden", "The user does not have secrets get permission.")
      const error = yield* run(
        Effect.gen(function* () {
          const vault = yield* Vault
          return yield* Effect.flip(vault.getVersionSecret("errs", "v1"))
        }),
      )
      expect(error._tag).toBe("VaultForbidden")
      if (error._tag !== "VaultForbidden") return
      expect(error.permission).toBe("secrets/get")
      expect(error.message).toContain("Microsoft.KeyVault/vaults/secrets/getSecret/action")
    }),
  )
})

describe("what an answer or a failure tells the deploy program (enabled, who retries, did it take effect)", () => {
  for (const [status, code] of [
    [500, "InternalServerError"],
    [408, "RequestTimeout"],
  ] as const)
    it.live(
      `${status} on a read: VaultUnavailable that the SDK already retried (not a definite refusal)`,
      () =>
        Effect.gen(function* () {
          const error = yield* getLatestFailure((res) => keyVaultError(res, status, code, "try again"))
          expect(error._tag).toBe("VaultUnavailable")
          if (error._tag !== "VaultUnavailable") return
          expect(error.retried).toBe(true)
          // 1 attempt + maxRetries (2): the SDK's exponential retries.
          expect(authorized("GET", "/certificates/fails/")).toHaveLength(3)
        }),
    )

  it.live("429 without Retry-After: the SDK did not retry it, so it is not marked retried", () =>
    Effect.gen(function* () {
      const error = yield* getLatestFailure((res) =>
        keyVaultError(res, 429, "Throttled", "Too many requests"),
      )
      expect(error._tag).toBe("VaultThrottled")
      if (error._tag !== "VaultThrottled") return
      expect(error.retried).toBeUndefined()
      expect(error.retryAfterMs).toBeUndefined()
      expect(error.message).toContain("without Retry-After")
      expect(authorized("GET", "/certificates/fails/")).toHaveLength(1)
    }),
  )

  it.live(
    "with the SDK's retries off (maxRetries 0) a 503 read is not marked retried: the deploy program retries it",
    () =>
      Effect.gen(function* () {
        const error = yield* getLatestFailure(
          (res) => keyVaultError(res, 503, "ServiceUnavailable", "try later"),
          {
            retry: { maxRetries: 0 },
          },
        )
        expect(error._tag).toBe("VaultUnavailable")
        if (error._tag !== "VaultUnavailable") return
        expect(error.retried).toBeUndefined()
        expect(authorized("GET", "/certificates/fails/")).toHaveLength(1)
      }),
  )

  it.live(
    "an answer without attributes.enabled is malformed: no enabled flag is made up (true once let a disabled version pass verify)",
    () =>
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
        const full = yield* Effect.promise(() => bundle("no-enabled", "v1", material, {}))
        const { enabled: _, ...attributes } = full.attributes
        listener.answer = (_req, res) => json(res, 200, { ...full, attributes })
        const error = yield* run(
          Effect.flatMap(Effect.service(Vault), (vault) => Effect.flip(vault.getLatest("no-enabled"))),
        )
        expect(error._tag).toBe("VaultMalformedAnswer")
        expect(error.message).toContain("`attributes.enabled`")
        // Key Vault sends it with every version; the same answer with it is read as usual.
        listener.answer = (_req, res) => json(res, 200, full)
        const latest = yield* run(
          Effect.flatMap(Effect.service(Vault), (vault) => vault.getLatest("no-enabled")),
        )
        expect(latest.versionId).toBe("v1")
        expect(latest.enabled).toBe(true)
      }),
  )

  it.live(
    "connection refused on a read: VaultUnavailable marked retried (the SDK retries refused connections)",
    () =>
      Effect.gen(function* () {
        const error = yield* Effect.flatMap(Effect.service(Vault), (vault) =>
          Effect.flip(vault.getLatest("refused")),
        ).pipe(Effect.provide(refusingVaultLayer))
        expect(error._tag).toBe("VaultUnavailable")
        if (error._tag !== "VaultUnavailable") return
        expect(error.message).toContain("ECONNREFUSED")
        expect(error.retried).toBe(true)
      }),
  )
})

/**
 * A read of the listener, whose CA this client does not trust (as behind a TLS-inspecting proxy),
 * with `trustedCaPem` when given: its error, with nothing reaching the listener.
 */
const untrustedRead = (trustedCaPem?: string) =>
  Effect.gen(function* () {
    listener.log.length = 0
    const untrusting = AzureKeyVault.layer({
      vaultUrl: listener.url,
      credential: staticCredential,
      customCloud: true,
      ...(trustedCaPem === undefined ? {} : { trustedCaPem }),
      retry: { maxRetries: 2, retryDelayInMs: 5, maxRetryDelayInMs: 20 },
    }).pipe(Layer.provideMerge(Layer.mergeAll(RecordingMetrics.layer, Pkcs12.layer)))
    const error = yield* Effect.flatMap(Effect.service(Vault), (vault) =>
      Effect.flip(vault.getLatest("untrusted")),
    ).pipe(Effect.provide(untrusting))
    expect(listener.log).toEqual([])
    return error
  })

describe("a vault whose TLS certificate this client does not accept", () => {
  it.live("is VaultUnavailable marked tlsRefused, sent nothing, and names the CA trust to fix", () =>
    Effect.gen(function* () {
      // The listener's CA is not given (nor in NODE_EXTRA_CA_CERTS).
      const error = yield* untrustedRead()
      expect(error._tag).toBe("VaultUnavailable")
      if (error._tag !== "VaultUnavailable") return
      expect(error.tlsRefused).toBe(true)
      expect(error.message).toMatch(
        /the vault's TLS certificate was not accepted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\), so nothing was sent/,
      )
      expect(error.message).toContain("NODE_EXTRA_CA_CERTS")
      // Not a transient failure: the deploy program does not retry it.
      expect(isRetriableRead(error)).toBe(false)
    }),
  )

  it.live(
    "with trustedCaPem: names trustedCaPem as the place for the CA, not NODE_EXTRA_CA_CERTS (which the client does not read then)",
    () =>
      Effect.gen(function* () {
        // Another CA than the listener's: a library caller's trustedCaPem that misses the proxy's CA.
        const error = yield* untrustedRead(toPem("CERTIFICATE", ca.der))
        expect(error._tag).toBe("VaultUnavailable")
        if (error._tag !== "VaultUnavailable") return
        expect(error.tlsRefused).toBe(true)
        expect(error.message).toContain(
          "This client trusts Node's CA list and the CAs given as trustedCaPem (NODE_EXTRA_CA_CERTS and the system store are not read then); a proxy or firewall that inspects TLS needs its CA among trustedCaPem",
        )
        expect(error.message).not.toContain("the CA file NODE_EXTRA_CA_CERTS names")
      }),
  )
})

describe("a recovery that never becomes readable", () => {
  it.live("ends VaultAmbiguous after recoverTimeoutMs instead of polling for good", () =>
    Effect.gen(function* () {
      listener.log.length = 0
      const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
      const recovered = yield* Effect.promise(() => bundle("stuck", "v1", material, {}))
      // Key Vault accepts the recovery, and the certificate is never served (the poller's reads: 404).
      listener.answer = (req, res) =>
        req.method === "POST"
          ? json(res, 200, recovered)
          : keyVaultError(res, 404, "CertificateNotFound", "A certificate with (name/id) stuck was not found")
      const { error, recorder } = yield* run(
        Effect.gen(function* () {
          const vault = yield* Vault
          return {
            error: yield* Effect.flip(vault.recoverDeleted("stuck")),
            recorder: yield* MetricsRecorder,
          }
        }),
        { recoverPollIntervalMs: 20, recoverTimeoutMs: 1_500 },
      )
      expect(error._tag).toBe("VaultAmbiguous")
      expect(error.message).toBe(
        "recovering the soft-deleted certificate: outcome unknown: the vault accepted the recovery (it answered 200), but the certificate was not served within 1.5 s",
      )
      expect(recorder.count("vaultRequest", "recoverDeleted:ambiguous")).toBe(1)
      // One recovery sent, and the poller read the certificate more than once before the end ...
      expect(authorized("POST", "/deletedcertificates/stuck/recover")).toHaveLength(1)
      const reads = authorized("GET", "/certificates/stuck/").length
      expect(reads).toBeGreaterThan(1)
      // ... and not after it: the deadline stopped the poller (ten of its intervals later).
      yield* Effect.sleep("200 millis")
      expect(authorized("GET", "/certificates/stuck/").length).toBeLessThanOrEqual(reads + 1)
    }),
  )
})

describe("a recovery the vault accepted, then its read-back fails", () => {
  it.live(
    "the vault then refuses connections (through the SDK's retries): VaultAmbiguous naming the read's failure, not VaultUnavailable \"nothing was sent\"",
    () =>
      Effect.gen(function* () {
        // A listener of its own, closed once it has answered the recovery: the poller's reads
        // after it meet a refused connection, which for a write alone would mean nothing was sent.
        const vault = yield* Effect.promise(async () => startListener(await loopbackTls()))
        const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
        const recovered = yield* Effect.promise(() => bundle("accepted", "v1", material, {}))
        vault.answer = (req, res) => {
          if (req.method !== "POST")
            return keyVaultError(
              res,
              404,
              "CertificateNotFound",
              "A certificate with (name/id) accepted was not found",
            )
          res.writeHead(200, { "content-type": "application/json; charset=utf-8", connection: "close" })
          res.end(JSON.stringify(recovered), () => void vault.close())
        }
        const { error, recorder } = yield* Effect.gen(function* () {
          const port = yield* Vault
          return {
            error: yield* Effect.flip(port.recoverDeleted("accepted")),
            recorder: yield* MetricsRecorder,
          }
        }).pipe(
          (e) => run(e, { vaultUrl: vault.url, trustedCaPem: vault.ca, recoverPollIntervalMs: 20 }),
          Effect.ensuring(Effect.promise(() => vault.close())),
        )
        expect(vault.log.filter((r) => r.authorized && r.method === "POST")).toHaveLength(1)
        expect(error._tag).toBe("VaultAmbiguous")
        expect(error.message).toContain(
          "recovering the soft-deleted certificate: outcome unknown: the vault accepted the recovery (it answered 200), so it has taken effect or is under way, but reading the recovered certificate then failed (unavailable: the vault could not be reached (ECONNREFUSED)",
        )
        expect(recorder.count("vaultRequest", "recoverDeleted:ambiguous")).toBe(1)
      }),
  )
})

describe("imports, backing secrets and soft-deleted names: what the operator is told", () => {
  /** The error of an import of `name` the vault answers with `status`, `code`, `message` (and `innerCode`). */
  const importError = (
    name: string,
    ...answer: [status: number, code: string, message: string, innerCode?: string]
  ) => {
    listener.answer = (_req, res) => keyVaultError(res, ...answer)
    return run(
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
        const pfx = yield* pfxOf(material)
        const vault = yield* Vault
        return yield* Effect.flip(vault.importVersion({ name, pfx, password: Redacted.make(""), tags: {} }))
      }),
    )
  }

  it.live(
    "409 with the inner code ObjectIsDeletedButRecoverable is soft-deleted, whatever the message says",
    () =>
      Effect.gen(function* () {
        const error = yield* importError(
          "gone",
          409,
          "Conflict",
          "Certificate gone cannot be written now.",
          "ObjectIsDeletedButRecoverable",
        )
        expect(error._tag).toBe("VaultConflictSoftDeleted")
      }),
  )

  it.live(
    "409 ObjectIsBeingDeleted (a delete still under way) is a refusal that names the delete and what follows it",
    () =>
      Effect.gen(function* () {
        // The answer Key Vault gives for an object whose delete is under way (recorded for keys).
        const error = yield* importError(
          "leaving",
          409,
          "Conflict",
          "Certificate is currently being deleted.",
          "ObjectIsBeingDeleted",
        )
        expect(error._tag).toBe("VaultRequestRejected")
        if (error._tag !== "VaultRequestRejected") return
        expect(error.code).toBe("ObjectIsBeingDeleted")
        expect(error.message).toContain("the certificate is being deleted in the vault")
        expect(error.message).toContain("on_soft_deleted: recover")
      }),
  )

  it.live("404 on an import (no such vault path) is a definite refusal, not a missing certificate", () =>
    Effect.gen(function* () {
      const error = yield* importError("nowhere", 404, "NotFound", "The requested resource was not found.")
      expect(error._tag).toBe("VaultRequestRejected")
      if (error._tag !== "VaultRequestRejected") return
      expect(error.code).toBe("NotFound")
    }),
  )

  it.live(
    "an import refused a connection after the challenge was answered: nothing was sent, VaultUnavailable (not ambiguous)",
    () =>
      Effect.gen(function* () {
        // A vault of its own that goes away once the client holds its challenge and token.
        const gone = yield* Effect.promise(async () => startListener(await loopbackTls()))
        gone.answer = (_req, res) => keyVaultError(res, 404, "CertificateNotFound", "not here")
        const error = yield* Effect.gen(function* () {
          const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
          const pfx = yield* pfxOf(material)
          const vault = yield* Vault
          expect((yield* Effect.flip(vault.getLatest("vanishing")))._tag).toBe("VaultNotFound")
          yield* Effect.promise(() => gone.close())
          yield* Effect.sleep("50 millis")
          return yield* Effect.flip(
            vault.importVersion({ name: "vanishing", pfx, password: Redacted.make(""), tags: {} }),
          )
        }).pipe(
          Effect.provide(
            AzureKeyVault.layer({
              vaultUrl: gone.url,
              credential: staticCredential,
              customCloud: true,
              trustedCaPem: gone.ca,
              retry: { maxRetries: 1, retryDelayInMs: 5, maxRetryDelayInMs: 10 },
            }).pipe(Layer.provideMerge(Layer.mergeAll(RecordingMetrics.layer, Pkcs12.layer))),
          ),
        )
        // Only the read reached the vault; the import's attempts were refused before any byte was sent.
        expect(gone.log.filter((r) => r.method === "POST")).toEqual([])
        expect(error._tag, error.message).toBe("VaultUnavailable")
        expect(error.message).toContain("ECONNREFUSED")
      }),
  )

  it.live(
    "a PEM backing secret gives the PFX of its leaf (the first certificate), its chain and its key",
    () =>
      Effect.gen(function* () {
        const material = yield* Effect.promise(() => makeMaterial(ca, "P-256"))
        const pem = [
          toPem("PRIVATE KEY", Redacted.value(material.key)),
          toPem("CERTIFICATE", material.leaf),
          toPem("CERTIFICATE", ca.der),
        ].join("\n")
        listener.answer = (_req, res) =>
          json(res, 200, {
            value: pem,
            id: `${listener.url}/secrets/pem-app/v1`,
            contentType: "application/x-pem-file",
            attributes: { enabled: true, created: 1_700_000_000, updated: 1_700_000_000 },
            kid: `${listener.url}/keys/pem-app/v1`,
            managed: true,
          })
        const decoded = yield* run(
          Effect.gen(function* () {
            const vault = yield* Vault
            const codec = yield* PfxCodec
            const secret = yield* vault.getVersionSecret("pem-app", "v1")
            return yield* codec.decode(secret.pfx, secret.password)
          }),
        )
        expect(Buffer.from(decoded.leaf).toString("hex")).toBe(Buffer.from(material.leaf).toString("hex"))
        expect(decoded.chain.map((c) => Buffer.from(c).toString("hex"))).toEqual([
          Buffer.from(ca.der).toString("hex"),
        ])
      }),
  )
})
