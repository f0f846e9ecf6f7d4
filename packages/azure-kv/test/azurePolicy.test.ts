/**
 * The vault's Azure Policy refuses an import (a built-in certificate policy assigned with effect
 * Deny), over HTTPS with the real SDKs: Key Vault answers 403 `Forbidden` with the inner code an
 * access policy's refusal carries too (`ForbiddenByPolicy`), and a message that names the policy
 * assignment. No grant helps, so it is no missing permission: the deploy fails with a request the
 * vault refused (`VaultRequestRejected`, code `RequestDisallowedByPolicy`), its reason naming the
 * assignment and the fixes that work (a certificate the assignment allows, or an exemption).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import type { DeployOutcome } from "@kvdeploy/core"
import { MetricsRecorder } from "@kvdeploy/core/test"
import type { Emulator, FaultAction } from "@kvdeploy/kv-emulator"
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

const VAULT = "governed"
const ASSIGNMENT_ID =
  "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Authorization/policyAssignments/cert-max-validity"
/** The built-in "Certificates should have the specified lifetime action triggers" definition. */
const LIFETIME_ACTION_DEFINITION = "12ef42cb-9903-4e39-9c26-422d29570417"
let emulator: Emulator
let ca: Issuer

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT] })
  ca = await makeCa()
})
afterAll(() => emulator?.stop())

/** Deploy `name` while the vault's Azure Policy refuses its import as `denied` says. */
const deployRefused = (name: string, denied: Extract<FaultAction, { kind: "policyDenied" }>) =>
  Effect.gen(function* () {
    const target = targetFor(emulator, VAULT, name)
    const credential = yield* credentialFor(emulator, target)
    emulator.faults.add({ operation: "import", vault: VAULT, name, action: denied })
    const material = yield* Effect.promise(() => makeMaterial(ca))
    return yield* Effect.gen(function* () {
      const outcome: DeployOutcome = yield* deployOnce(target, material, name).pipe(fastReads)
      const recorder = yield* MetricsRecorder
      return { outcome, rejectedImports: recorder.count("vaultRequest", "importVersion:rejected") }
    }).pipe(Effect.provide(worldLayer(emulator, target, credential)))
  })

describe("an import the vault's Azure Policy refuses", () => {
  it.live(
    "is a refused request naming the assignment (no missing permission, no grant advice); nothing written, counted as rejected",
    () =>
      Effect.gen(function* () {
        const { outcome, rejectedImports } = yield* deployRefused("too-long", {
          kind: "policyDenied",
          assignment: { name: "cert-max-validity", id: ASSIGNMENT_ID },
        })
        expect(outcome._tag, outcome.reason).toBe("Failed")
        if (outcome._tag !== "Failed") return
        expect(outcome.step).toBe("import")
        expect(outcome.error).toBe("VaultRequestRejected")
        expect(outcome.code).toBe("RequestDisallowedByPolicy")
        expect(outcome.refusal).toBeUndefined()
        expect(outcome.reason).toContain("the vault's Azure Policy refused this certificate")
        expect(outcome.reason).toContain(`policy assignment cert-max-validity (${ASSIGNMENT_ID})`)
        expect(outcome.reason).toContain("Certificate 'too-long' was disallowed by policy.")
        expect(outcome.reason).toContain("policy exemption")
        expect(outcome.reason).not.toMatch(/grant|Certificates Officer|needs certificates\/import/)
        // A general assignment is not blamed on kvdeploy's own import policy.
        expect(outcome.reason).not.toContain("kvdeploy's import policy")
        expect(rejectedImports).toBe(1)
        expect(emulator.state.versions(VAULT, "too-long") ?? []).toEqual([])
      }),
  )

  it.live(
    "an assignment of the lifetime action triggers definition names kvdeploy's own import policy (an e-mail at 80 % of the lifetime)",
    () =>
      Effect.gen(function* () {
        const { outcome } = yield* deployRefused("lifetime", {
          kind: "policyDenied",
          assignment: { name: "cert-lifetime-actions" },
          definition: { name: LIFETIME_ACTION_DEFINITION },
        })
        expect(outcome._tag, outcome.reason).toBe("Failed")
        if (outcome._tag !== "Failed") return
        expect(outcome.code).toBe("RequestDisallowedByPolicy")
        expect(outcome.reason).toContain("policy assignment cert-lifetime-actions")
        expect(outcome.reason).toContain("kvdeploy's import policy")
        expect(outcome.reason).toContain("80 %")
      }),
  )

  it.live(
    "an assignment named with line breaks and terminal escapes reaches the deploy's reason on one line, escaped; a name with spaces gets a quoted az command",
    () =>
      Effect.gen(function* () {
        const forged = yield* deployRefused("forged", {
          kind: "policyDenied",
          assignment: {
            name: "cert-max\nFAKE: deploy Succeeded\u001b]0;owned\u0007\u001b[2J",
            id: ASSIGNMENT_ID,
          },
        })
        expect(forged.outcome._tag, forged.outcome.reason).toBe("Failed")
        // biome-ignore lint/suspicious/noControlCharactersInRegex: the controls are what it looks for
        expect(forged.outcome.reason).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/)
        expect(forged.outcome.reason).toContain(
          "policy assignment cert-max FAKE: deploy Succeeded\\x1b]0;owned\\x07\\x1b[2J",
        )
        const spaced = yield* deployRefused("spaced", {
          kind: "policyDenied",
          assignment: {
            name: "Cert max validity",
            id: "/subscriptions/s/resourceGroups/rg(prod)/providers/Microsoft.Authorization/policyAssignments/x",
          },
        })
        expect(spaced.outcome.reason).toContain(
          "`az policy assignment show --name 'Cert max validity' --scope '/subscriptions/s/resourceGroups/rg(prod)'`",
        )
      }),
  )
})
