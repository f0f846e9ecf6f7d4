/**
 * The reconciler itself (in-memory vaults, no HTTP) when a reload lands while
 * a pass is being set up: with 3,000 deployments, setting up the pass takes
 * more than one run of the fiber scheduler, so a reload's apply runs in the
 * middle of it.
 * - The pass still ends (its "pass over" is recorded, and with it the idle
 *   release is let go): every deployment it counts ends its part or leaves it.
 * - A deployment moved to another vault by that reload is not found in place
 *   from its old vault's list.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { forwardTags, type Vault, VaultUnavailable } from "@kvdeploy/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { afterAll, describe, expect, it, onTestFinished } from "vitest"
import { makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig } from "../src/config.js"
import { configIn, reconcilerOf, vaultsOf } from "./inProcess.js"
import { makePki } from "./pki.js"

const N = 3000
const dir = mkdtempSync(join(tmpdir(), "kvdeploy-pass-count-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const configOf = (n: number): AgentConfig => {
  return configIn(dir, {
    agent: { listen: "127.0.0.1:0", state_dir: join(dir, "state"), backoff_base_seconds: 60 },
    deployments: Array.from({ length: n }, (_, i) => ({
      name: `d${i}`,
      source: { cert: join(dir, `missing-${i}.crt`), key: join(dir, `missing-${i}.key`) },
      target: { vault_url: "https://countvault.vault.azure.net", certificate_name: `c${i}` },
    })),
  })
}

describe("a pass over every deployment", () => {
  it.each([
    ["a reload applied before the pass", false],
    ["a reload applied while the pass is set up", true],
  ])("ends with %s that removed a deployment", async (_label, concurrent) => {
    const full = configOf(N)
    const smaller = { ...configOf(N - 1), settings: full.settings }
    const metrics = makeAgentMetrics()
    const over: Array<string> = []
    const record = metrics.passOver
    const counted = {
      ...metrics,
      passOver: (reason: string, endedAtMs: number, durationMs: number, listed: number) => {
        over.push(reason)
        record(reason, endedAtMs, durationMs, listed)
      },
    }
    const { reconciler } = await reconcilerOf(
      full,
      join(dir, concurrent ? "concurrent" : "before"),
      vaultsOf({}),
      counted,
    )
    if (concurrent) {
      Effect.runFork(reconciler.triggerAll("interval"))
      Effect.runFork(reconciler.apply(smaller))
    } else {
      await Effect.runPromise(reconciler.apply(smaller))
      Effect.runFork(reconciler.triggerAll("interval"))
    }
    await expect.poll(() => over, { timeout: 30_000, interval: 100 }).toContain("interval")
    expect(reconciler.deployments()).toHaveLength(N - 1)
    await Effect.runPromise(reconciler.shutdown)
  })
})

describe("a reload that moves a deployment while a pass is set up", () => {
  it("does not take the old vault's list entry as the new vault's", async () => {
    const pki = await makePki()
    const leaf = await pki.leaf("moved.example.test")
    writeFileSync(join(dir, "moved.crt"), leaf.certPem)
    writeFileSync(join(dir, "moved.key"), leaf.keyPem, { mode: 0o600 })
    const A = "https://vaulta.vault.azure.net"
    const B = "https://vaultb.vault.azure.net"
    const configWith = (vaultUrl: string): AgentConfig => {
      return configIn(dir, {
        agent: {
          listen: "127.0.0.1:0",
          state_dir: join(dir, "moved-state"),
          backoff_base_seconds: 60,
          vault_list_min_deployments: 1,
        },
        deployments: [
          {
            name: "moved",
            source: { cert: join(dir, "moved.crt"), key: join(dir, "moved.key") },
            target: { vault_url: vaultUrl, certificate_name: "c" },
          },
          ...Array.from({ length: N }, (_, i) => ({
            name: `d${i}`,
            source: { cert: join(dir, `missing-${i}.crt`), key: join(dir, `missing-${i}.key`) },
            target: { vault_url: "https://nowhere.vault.azure.net", certificate_name: `n${i}` },
          })),
        ],
      })
    }
    const before = configWith(A)
    const after = { ...configWith(B), settings: before.settings }
    const moved = after.deployments[0]
    if (moved === undefined) throw new Error("no deployment")
    // Vault A lists the certificate in place (the source, with kvdeploy's tags); vault B has nothing,
    // and every read fails (so a deployment that reads is not recorded in place).
    const tags = forwardTags(moved.target.tags, moved.certificateId)
    let listsOfA = 0
    let readsOfB = 0
    const unavailable = () =>
      new VaultUnavailable({ operation: "getLatest", detail: "no vault in this test" })
    const vaultA = {
      listCertificates: () =>
        Effect.sync(() => {
          listsOfA++
          return {
            certificates: [{ name: "c", x5t: leaf.x5t, enabled: true, tags }],
            continuation: undefined,
          }
        }),
      getLatest: () => Effect.fail(unavailable()),
    } as unknown as Vault["Service"]
    const vaultB = {
      listCertificates: () => Effect.succeed({ certificates: [], continuation: undefined }),
      getLatest: () =>
        Effect.suspend(() => {
          readsOfB++
          return Effect.fail(unavailable())
        }),
    } as unknown as Vault["Service"]
    const { reconciler, state } = await reconcilerOf(
      before,
      join(dir, "moved-state"),
      vaultsOf({ [A]: vaultA, [B]: vaultB }),
    )
    Effect.runFork(reconciler.triggerAll("interval"))
    Effect.runFork(reconciler.apply(after))
    await expect.poll(() => state.get("moved")?.outcome, { timeout: 30_000, interval: 100 }).toBeDefined()
    await Effect.runPromise(reconciler.shutdown)
    // The pass was set up with the deployment under vault A and listed A; the moved deployment read B.
    expect(listsOfA).toBe(1)
    expect(readsOfB).toBeGreaterThan(0)
    expect(state.get("moved")?.outcome).not.toBe("Skipped")
  })
})

describe.each([[1], [0]])(
  "a reload while an attempt waits for its permit (vault_list_min_deployments %i)",
  (minList) => {
    it("never records the old source's certificate under the new configuration", async () => {
      const dir = mkdtempSync(join(tmpdir(), "kvdeploy-stale-source-"))
      onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
      const pki = await makePki()
      const oldLeaf = await pki.leaf("m.example.test")
      const newLeaf = await pki.leaf("m.example.test")
      const blockLeaf = await pki.leaf("b.example.test")
      for (const [n, l] of [
        ["old", oldLeaf],
        ["new", newLeaf],
        ["b", blockLeaf],
      ] as const) {
        writeFileSync(join(dir, `${n}.crt`), l.certPem)
        writeFileSync(join(dir, `${n}.key`), l.keyPem, { mode: 0o600 })
      }
      const A = "https://vaulta.vault.azure.net"
      const Z = "https://vaultz.vault.azure.net"
      const configWith = (src: string): AgentConfig => {
        return configIn(dir, {
          agent: {
            listen: "127.0.0.1:0",
            state_dir: join(dir, "state"),
            backoff_base_seconds: 60,
            concurrency: 1,
            vault_list_min_deployments: minList,
          },
          deployments: [
            {
              name: "blocker",
              source: { cert: join(dir, "b.crt"), key: join(dir, "b.key") },
              target: { vault_url: Z, certificate_name: "b" },
            },
            {
              name: "m",
              source: { cert: join(dir, `${src}.crt`), key: join(dir, `${src}.key`) },
              target: { vault_url: A, certificate_name: "c" },
            },
          ],
        })
      }
      const before = configWith("old")
      const after = { ...configWith("new"), settings: before.settings }
      const m2 = after.deployments[1]
      if (m2 === undefined) throw new Error("no m")
      const tags = forwardTags(m2.target.tags, m2.certificateId)
      const blockerIn = Deferred.makeUnsafe<void>()
      const blockerGo = Deferred.makeUnsafe<void>()
      const listGo = Deferred.makeUnsafe<void>()
      let lists = 0
      const served = { x5t: oldLeaf.x5t, enabled: true, tags, versionId: "v1", name: "c" }
      const vaultA = {
        listCertificates: () =>
          Effect.suspend(() => {
            lists++
            return Effect.andThen(
              Deferred.await(listGo),
              Effect.succeed({ certificates: [served], continuation: undefined }),
            )
          }),
        getLatest: () => Effect.succeed(served),
      } as unknown as Vault["Service"]
      const vaultZ = {
        getLatest: () =>
          Effect.andThen(
            Effect.andThen(Deferred.succeed(blockerIn, undefined), Deferred.await(blockerGo)),
            Effect.fail(new VaultUnavailable({ operation: "getLatest", detail: "blocker" })),
          ),
      } as unknown as Vault["Service"]
      const { reconciler, state } = await reconcilerOf(
        before,
        join(dir, "state"),
        vaultsOf({ [A]: vaultA, [Z]: vaultZ }),
      )
      await Effect.runPromise(reconciler.trigger("blocker", "file change"))
      await Effect.runPromise(Deferred.await(blockerIn))
      await Effect.runPromise(reconciler.trigger("m", "file change"))
      // "m" reads the old source and waits for the one global permit, which the blocker holds. (The wait is
      // generous: were "m" not to have read by then, it would read the new source and the test would pass
      // without exercising the race; it cannot fail for that reason.)
      await new Promise((r) => setTimeout(r, 1000))
      await Effect.runPromise(reconciler.apply(after))
      await Effect.runPromise(reconciler.triggerAll("reload"))
      await Effect.runPromise(Deferred.succeed(blockerGo, undefined))
      await expect.poll(() => state.get("m")?.configFingerprint, { timeout: 10_000 }).toBe(m2.fingerprint)
      const rec = state.get("m")
      await Effect.runPromise(Effect.timeoutOption(reconciler.shutdown, "5 seconds"))
      // Recorded under the new configuration, it is about the new source: never "in place" with the old one.
      expect(rec?.x5t).toBe(newLeaf.x5t)
      expect(lists).toBe(minList === 0 ? 0 : 1)
      void lists
    })
  },
)
