/**
 * A delete and a recovery that take a while to show, as Key Vault's do (about 10 s in the SDK's
 * recordings; the emulator's `propagationMs`): a deploy racing someone's delete is refused with
 * the delete named and writes nothing, and a deploy that recovers waits until the certificate is
 * served, through the real SDK's poller.
 */
import type { TokenCredential } from "@azure/core-auth"
import { CertificateClient } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import type { CertificateMaterial, DeployOutcome, TargetConfig } from "@kvdeploy/core"
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
})
