/**
 * An RSA leaf issued by an EC issuer (an ECDSA signature over an RSA key): Key Vault takes the key
 * type from the signature and refuses the import (400 KeySizeNotSupported, "Unsupported key size
 * (2048). Supported sizes are [256, 384, 521]"). kvdeploy's preflight refuses it first, with the
 * real codec reading the leaf, so the vault sees no request at all.
 */
import type { TokenCredential } from "@azure/core-auth"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type Emulator, start } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import { credentialFor, deployOnce, fastReads, targetFor, worldLayer } from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"

const VAULT = "keytypes"
let emulator: Emulator
let ecCa: Issuer
let rsaCa: Issuer
let credential: TokenCredential

beforeAll(async () => {
  emulator = await start({ vaults: [VAULT], warn: () => {} })
  ecCa = await makeCa("CN=kvdeploy EC Test CA", "P-256")
  rsaCa = await makeCa("CN=kvdeploy RSA Test CA", "RSA-2048")
  credential = await Effect.runPromise(credentialFor(emulator, targetFor(emulator, VAULT, "any")))
})
afterAll(() => emulator?.stop())

const deploy = (name: string, ca: Issuer, spec: "RSA-2048" | "P-256") =>
  Effect.gen(function* () {
    const target = targetFor(emulator, VAULT, name)
    const material = yield* Effect.promise(() => makeMaterial(ca, spec))
    const since = emulator.requests.mark()
    const outcome = yield* deployOnce(target, material, `id-${name}`).pipe(
      fastReads,
      Effect.provide(worldLayer(emulator, target, credential)),
    )
    const requests = emulator.requests.entries({ vault: VAULT, since }).filter((e) => !e.challenge)
    return { outcome, requests }
  })

describe("a leaf's key type and its issuer's", () => {
  it.live("an RSA leaf under an EC issuer is Rejected by the preflight, before any vault request", () =>
    Effect.gen(function* () {
      const { outcome, requests } = yield* deploy("rsa-under-ec", ecCa, "RSA-2048")
      expect(outcome._tag).toBe("Rejected")
      if (outcome._tag !== "Rejected") return
      expect(outcome.problems.map((p) => [p.field, p.reason])).toEqual([["leaf", "unsupported_key"]])
      expect(outcome.problems[0]?.message).toContain("signed with ECDSA")
      expect(outcome.problems[0]?.message).toContain("Unsupported key size (2048)")
      expect(requests).toEqual([])
      expect(emulator.state.versions(VAULT, "rsa-under-ec") ?? []).toHaveLength(0)
    }),
  )

  it.live("an RSA leaf under an RSA issuer, and an EC leaf under either, deploy", () =>
    Effect.gen(function* () {
      for (const [name, ca, spec] of [
        ["rsa-under-rsa", rsaCa, "RSA-2048"],
        ["ec-under-ec", ecCa, "P-256"],
        ["ec-under-rsa", rsaCa, "P-256"],
      ] as const) {
        const { outcome, requests } = yield* deploy(name, ca, spec)
        expect([name, outcome._tag]).toEqual([name, "Succeeded"])
        expect(requests).toHaveLength(3)
      }
    }),
  )
})
