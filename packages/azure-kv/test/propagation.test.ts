/**
 * A delete and a recovery that take a while to show, as Key Vault's do (about 10 s in the SDK's
 * recordings; the emulator's `propagationMs`): a deploy racing someone's delete is refused with
 * the delete named and writes nothing, a deploy that recovers waits until the certificate is
 * served, through the real SDK's poller, and one whose recovery comes while another writer's has
 * not shown yet says so.
 */
import type { TokenCredential } from "@azure/core-auth"
import { CertificateClient } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type CertificateMaterial, type DeployOutcome, type TargetConfig, Vault } from "@kvdeploy/core"
import type { Emulator } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import {
  credentialFor,
  deployOnce,
  fastReads,
  startEmulator,
  targetFor,
  worldLayer,
} from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"

const VAULT = "settling"
// Long enough for the deploy right after the delete to run within it, also on a loaded machine.
const SETTLE_MS = 2000
let emulator: Emulator
let ca: Issuer
let credential: TokenCredential
let sdk: CertificateClient

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT], propagationMs: SETTLE_MS })
  ca = await makeCa()
  credential = await Effect.runPromise(credentialFor(emulator, targetFor(emulator, VAULT, "any")))
  sdk = new CertificateClient(emulator.vault(VAULT).url, credential, {
    tlsOptions: { ca: emulator.caPem },
    disableChallengeResourceVerification: true,
  })
})
afterAll(() => emulator?.stop())

const deployTo = (target: TargetConfig, material: CertificateMaterial) =>
  Effect.gen(function* () {
    const since = emulator.requests.mark()
    const outcome: DeployOutcome = yield* deployOnce(target, material, `id-${target.certificateName}`).pipe(
      fastReads,
    )
    const requests = emulator.requests
      .entries({ vault: VAULT, since })
      .filter((e) => !e.challenge)
      .map((e) => `${e.operation} ${e.status}`)
    return { outcome, requests }
  }).pipe(Effect.provide(worldLayer(emulator, target, credential)))

describe("a delete and a recovery that take a while to show", () => {
  it.live(
    "a deploy during a delete is refused naming it, nothing written; once deleted, a recovering deploy waits until the certificate is served",
    () =>
      Effect.gen(function* () {
        const name = "racing-app"
        const material = () => Effect.promise(() => makeMaterial(ca))
        expect((yield* deployTo(targetFor(emulator, VAULT, name), yield* material())).outcome._tag).toBe(
          "Succeeded",
        )
        // Someone deletes the certificate; the deploy comes before the delete has shown.
        const deleting = yield* Effect.promise(() => sdk.beginDeleteCertificate(name, { intervalInMs: 50 }))
        const racing = yield* deployTo(targetFor(emulator, VAULT, name), yield* material())
        expect(racing.outcome._tag).toBe("Failed")
        if (racing.outcome._tag !== "Failed") return
        expect(racing.outcome.error).toBe("VaultRequestRejected")
        expect(racing.outcome.reason).toContain("the certificate is being deleted in the vault")
        expect(racing.requests).toContain("import 409")
        expect(racing.requests).not.toContain("import 200")

        // Once the delete has shown, the name is soft-deleted: a deploy that recovers it waits until
        // the recovered certificate is served (its reads answer 404 meanwhile), then imports.
        yield* Effect.promise(() => deleting.pollUntilDone())
        const startedAt = Date.now()
        const recovered = yield* deployTo(
          targetFor(emulator, VAULT, name, { on_soft_deleted: "recover" }),
          yield* material(),
        )
        expect(recovered.outcome._tag, JSON.stringify(recovered.requests)).toBe("Succeeded")
        expect(recovered.outcome.recovered).toBe("recovered")
        expect(Date.now() - startedAt).toBeGreaterThanOrEqual(SETTLE_MS - 100)
        expect(recovered.requests).toContain("recover 200")
        expect(recovered.requests.filter((r) => r === "getLatest 404").length).toBeGreaterThan(1)
        // The first deploy's version and the recovering deploy's: the racing one wrote nothing.
        expect(emulator.state.versions(VAULT, name)).toHaveLength(2)
      }),
    30_000,
  )

  it.live(
    "another writer's recovery not shown yet when the deploy recovers: its recover POST finds nothing deleted (404), and the deploy says so (not 'could not be recovered'); once shown, a deploy goes on",
    () =>
      Effect.gen(function* () {
        const name = "recovering-elsewhere-app"
        const material = () => Effect.promise(() => makeMaterial(ca))
        expect((yield* deployTo(targetFor(emulator, VAULT, name), yield* material())).outcome._tag).toBe(
          "Succeeded",
        )
        yield* Effect.promise(async () =>
          (await sdk.beginDeleteCertificate(name, { intervalInMs: 50 })).pollUntilDone(),
        )
        const target = targetFor(emulator, VAULT, name, { on_soft_deleted: "recover" })
        // Another writer (its own SDK client) sends its recovery just before the adapter's, and does
        // not wait for it: the recovery takes SETTLE_MS to show.
        let othersRecovery: Promise<unknown> | undefined
        let adapterFrom = 0
        const since = emulator.requests.mark()
        const outcome = yield* Effect.gen(function* () {
          const port = yield* Vault
          const racing = Vault.of({
            ...port,
            recoverDeleted: (n) =>
              Effect.promise(async () => {
                const other = new CertificateClient(emulator.vault(VAULT).url, credential, {
                  tlsOptions: { ca: emulator.caPem },
                  disableChallengeResourceVerification: true,
                })
                const poller = await other.beginRecoverDeletedCertificate(n, { intervalInMs: 50 })
                othersRecovery = poller.pollUntilDone()
                adapterFrom = emulator.requests.mark()
              }).pipe(Effect.andThen(port.recoverDeleted(n))),
          })
          return yield* deployOnce(target, yield* material(), `id-${name}`).pipe(
            fastReads,
            Effect.provideService(Vault, racing),
          )
        }).pipe(Effect.provide(worldLayer(emulator, target, credential)))
        const ops = (from: number) =>
          emulator.requests
            .entries({ vault: VAULT, since: from })
            .filter((e) => !e.challenge)
            .map((e) => `${e.operation} ${e.status}`)
        // The other writer's recovery was accepted; the adapter's poller read 404 (not shown yet),
        // sent its recover POST, which found nothing deleted; the deploy read the latest: not served.
        expect(ops(since).filter((r) => r.startsWith("recover"))).toEqual(["recover 200", "recover 404"])
        expect(ops(adapterFrom)).toEqual(expect.arrayContaining(["recover 404"]))
        expect(outcome._tag, JSON.stringify(ops(since))).toBe("Failed")
        if (outcome._tag !== "Failed") return
        expect(outcome.step).toBe("soft-deleted")
        expect(outcome.error).toBe("VaultNotFound")
        expect(outcome.recovered).toBeUndefined()
        expect(outcome.reason).toContain(
          "the vault found no deleted certificate of the name when this deploy went to recover it, so someone else recovered or purged it meanwhile",
        )
        expect(outcome.reason).not.toContain("could not be recovered")
        expect(ops(since)).not.toContain("import 200")
        // Once the other writer's recovery has shown, deploying again goes on over what is served.
        yield* Effect.promise(() => othersRecovery ?? Promise.reject(new Error("no recovery sent")))
        const again = yield* deployTo(target, yield* material())
        expect(again.outcome._tag, JSON.stringify(again.requests)).toBe("Succeeded")
        expect(again.requests.filter((r) => r.startsWith("recover"))).toEqual([])
        expect(emulator.state.versions(VAULT, name)).toHaveLength(2)
      }),
    30_000,
  )
})
