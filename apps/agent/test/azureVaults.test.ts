/**
 * The agent's vault clients over the real Azure SDKs, against the emulator: shared by the
 * deployments of a vault, and let go when a reload leaves no deployment naming their vault
 * (their idle connections closed; a request still in flight on one finishes).
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { getCACertificates, setDefaultCACertificates } from "node:tls"
import { Metrics, type Vault } from "@kvdeploy/core"
import { changeProcessEnv } from "@kvdeploy/core/test"
import type { Emulator } from "@kvdeploy/kv-emulator"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { azureVaults } from "../src/azureVaults.js"
import type { AgentConfig } from "../src/config.js"
import { Vaults } from "../src/vaults.js"
import { requestHeld, startEmulator } from "./harness.js"
import { configIn } from "./inProcess.js"

const A = "retain-a"
const B = "retain-b"
let emulator: Emulator
let dir: string
let config: AgentConfig
/** Puts back the process environment beforeAll changed. */
let restoreEnv: (() => void) | undefined

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [A, B] })
  setDefaultCACertificates([...getCACertificates("default"), emulator.caPem])
  // The client-secret credential reads its identity from the environment, as in the agent's process.
  restoreEnv = changeProcessEnv(emulator.env.clientSecret)
  dir = mkdtempSync(join(tmpdir(), "kvdeploy-azure-vaults-"))
  const deployment = (vault: string) => ({
    name: vault,
    source: { cert: join(dir, `${vault}.crt`), key: join(dir, `${vault}.key`) },
    target: emulator.targetConfig(vault, `${vault}-cert`, "clientSecret"),
  })
  config = configIn(dir, {
    agent: { listen: "127.0.0.1:0", state_dir: join(dir, "state") },
    deployments: [deployment(A), deployment(B)],
  })
})
afterAll(async () => {
  restoreEnv?.()
  rmSync(dir, { recursive: true, force: true })
  await emulator.stop()
})

const runtimeOf = () =>
  ManagedRuntime.make(
    azureVaults(config).pipe(Layer.provide(Layer.mergeAll(Metrics.layerNoop, Pkcs12.layer))),
  )

/** A read of the certificate the deployment of `vault` names (it has none: answered not found). */
const read = (vault: Vault["Service"], name: string) => Effect.result(vault.getLatest(`${name}-cert`))

describe("azureVaults", () => {
  it("a reload that leaves no deployment naming a vault lets its client go, and closes its connections", async () => {
    const [targetA, targetB] = config.deployments.map((d) => d.target)
    const runtime = runtimeOf()
    try {
      const result = await runtime.runPromise(
        Effect.gen(function* () {
          const vaults = yield* Vaults
          const first = yield* vaults.forTarget(targetA!)
          // The deployments of a vault share its client.
          const again = yield* vaults.forTarget(targetA!)
          yield* read(first, A)
          yield* read(yield* vaults.forTarget(targetB!), B)
          // Each client keeps its connection between requests.
          const idleBefore = yield* vaults.releaseIdleConnections
          yield* read(first, A)
          yield* read(yield* vaults.forTarget(targetB!), B)
          // The reload keeps B's deployment only: A's client goes, and its idle connection is closed.
          const released = yield* vaults.retain([targetB!])
          const idleAfter = yield* vaults.releaseIdleConnections
          // Named again (a later reload), A has a client built anew, which works.
          const rebuilt = yield* vaults.forTarget(targetA!)
          const readAgain = yield* read(rebuilt, A)
          const keptAll = yield* vaults.retain([targetA!, targetB!])
          return { first, again, idleBefore, released, idleAfter, rebuilt, readAgain, keptAll }
        }),
      )
      expect(result.again).toBe(result.first)
      expect(result.idleBefore).toBe(2)
      expect(result.released).toEqual({ clients: 1, vaults: [emulator.vault(A).url] })
      // Only B's connection was still open: A's was closed by the retain.
      expect(result.idleAfter).toBe(1)
      expect(result.rebuilt).not.toBe(result.first)
      expect(result.readAgain._tag).toBe("Failure")
      expect(result.readAgain._tag === "Failure" && result.readAgain.failure._tag).toBe("VaultNotFound")
      expect(result.keptAll).toEqual({ clients: 0, vaults: [] })
    } finally {
      await runtime.dispose()
    }
  })

  it("a deploy still using a client a reload lets go finishes its requests, and their connections are closed as they end", async () => {
    const [targetA, targetB] = config.deployments.map((d) => d.target)
    const runtime = runtimeOf()
    // The process's TCP sockets (the client's and, in this process, the emulator's side).
    const sockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length
    const fault = emulator.faults.add({
      operation: "getLatest",
      vault: A,
      times: 1,
      action: { kind: "hold" },
    })
    try {
      // The count once the first test's connections have closed (the same over half a second).
      let before = -1
      for (let i = 0; i < 20 && before !== sockets(); i++) {
        before = sockets()
        await new Promise((r) => setTimeout(r, 500))
      }
      const result = await runtime.runPromise(
        Effect.gen(function* () {
          const vaults = yield* Vaults
          const vaultA = yield* vaults.forTarget(targetA!)
          // One request in flight when the reload comes, and one the same deploy sends after it.
          const inFlight = yield* Effect.forkChild(read(vaultA, A))
          yield* Effect.promise(() => requestHeld(emulator, fault))
          const whileHeld = sockets()
          const later = yield* Effect.forkChild(Effect.andThen(Effect.sleep("300 millis"), read(vaultA, A)))
          const released = yield* vaults.retain([targetB!])
          emulator.faults.release(fault)
          const answers = [yield* Fiber.join(inFlight), yield* Fiber.join(later)]
          return { whileHeld, released, answers, idle: yield* vaults.releaseIdleConnections }
        }),
      )
      expect(result.released).toEqual({ clients: 1, vaults: [emulator.vault(A).url] })
      for (const answer of result.answers)
        expect(answer._tag === "Failure" && answer.failure._tag).toBe("VaultNotFound")
      expect(result.idle).toBe(0)
      // The count sees A's connection (it is open while its request is held)...
      expect(result.whileHeld).toBeGreaterThan(before)
      // ...and neither request left one open (before, the second one's stayed open for good).
      await expect.poll(sockets, { timeout: 5_000 }).toBe(before)
    } finally {
      emulator.faults.clear()
      await runtime.dispose()
    }
  })
})
