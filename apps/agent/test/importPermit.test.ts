/**
 * A deployment's import permit and its interruption: a permit no import used goes back to its
 * vault, waiting for one does not hold a shutdown or a reload, and a deploy stopped before its
 * import (during its own snapshot read) writes nothing.
 */
import { createHash } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type ImportRequest, type Vault, VaultNotFound, type VaultVersion } from "@kvdeploy/core"
import { RecordingMetrics } from "@kvdeploy/core/test"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import { afterAll, describe, expect, it } from "vitest"
import { makeAgentMetrics } from "../src/agentMetrics.js"
import type { AgentConfig } from "../src/config.js"
import { makeReconciler } from "../src/reconciler.js"
import { openStateStore } from "../src/state.js"
import { configIn, oneVault } from "./inProcess.js"
import { makePki } from "./pki.js"

const dir = mkdtempSync(join(tmpdir(), "kvdeploy-import-permit-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const VAULT = "https://permits.vault.azure.net"

/**
 * A vault of versions per name (the last one served). `slowReads(from)` makes every read from the
 * `from`-th on wait 3 s, and `events` says what was sent, and which reads were stopped.
 */
const fakeVault = () => {
  const byName = new Map<string, Array<VaultVersion>>()
  const events: Array<string> = []
  let n = 0
  let reads = 0
  let slowFrom = Number.POSITIVE_INFINITY
  let slowStarted: () => void = () => {}
  const slowRead = new Promise<void>((resolve) => {
    slowStarted = resolve
  })
  const vault = {
    getLatest: (name: string) =>
      Effect.suspend(() => {
        const i = ++reads
        const answer = Effect.suspend(() => {
          const v = byName.get(name)?.at(-1)
          return v === undefined
            ? Effect.fail(new VaultNotFound({ operation: "getLatest", detail: `${name} does not exist` }))
            : Effect.succeed(v)
        })
        if (i < slowFrom) return answer
        events.push(`read ${i} started`)
        slowStarted()
        return Effect.andThen(Effect.sleep("3 seconds"), answer).pipe(
          Effect.onInterrupt(() => Effect.sync(() => events.push(`read ${i} stopped`))),
        )
      }),
    importVersion: (r: ImportRequest) =>
      Effect.sync(() => {
        events.push(`import ${r.name}`)
        const v: VaultVersion = {
          versionId: `v${++n}`,
          // Key Vault's x5t: the SHA-1 of the leaf's DER, base64url.
          x5t: r.leaf === undefined ? "" : createHash("sha1").update(r.leaf.der).digest("base64url"),
          serialHex: r.leaf?.serialHex ?? "01",
          enabled: true,
          createdAt: new Date(Date.now() + n * 1000),
          tags: { ...r.tags },
        }
        byName.set(r.name, [...(byName.get(r.name) ?? []), v])
        return v
      }),
  } as unknown as Vault["Service"]
  return {
    vault,
    events,
    imports: () => events.filter((e) => e.startsWith("import ")),
    /**
     * Another tool's copy of the served certificate, without kvdeploy's tags, becomes the served one
     * (not in place, so a deploy runs; another certificate would be held on before any deploy).
     */
    foreign: (name: string) =>
      byName.set(name, [
        ...(byName.get(name) ?? []),
        {
          versionId: `foreign${++n}`,
          x5t: byName.get(name)?.at(-1)?.x5t ?? "another-writers",
          serialHex: byName.get(name)?.at(-1)?.serialHex ?? "99",
          enabled: true,
          createdAt: new Date(Date.now() + n * 1000),
          tags: {},
        },
      ]),
    remove: (name: string) => byName.delete(name),
    slowReads: (from: "next but one") => {
      slowFrom = reads + (from === "next but one" ? 2 : 1)
      return slowRead
    },
  }
}

/** Deployments `names` of one vault, with files of their own, and the agent settings `agent`. */
const setUp = async (names: ReadonlyArray<string>, agent: Record<string, unknown>) => {
  const sub = mkdtempSync(join(dir, "case-"))
  const pki = await makePki()
  for (const name of names) {
    const leaf = await pki.leaf(`${name}.example.test`)
    writeFileSync(join(sub, `${name}.crt`), leaf.certPem)
    writeFileSync(join(sub, `${name}.key`), leaf.keyPem, { mode: 0o600 })
  }
  const configOf = (some: ReadonlyArray<string>): AgentConfig =>
    configIn(sub, {
      agent: {
        listen: "127.0.0.1:0",
        state_dir: join(sub, "state"),
        vault_list_min_deployments: 0,
        ...agent,
      },
      deployments: some.map((name) => ({
        name,
        source: { cert: join(sub, `${name}.crt`), key: join(sub, `${name}.key`) },
        target: { vault_url: VAULT, certificate_name: name },
      })),
    })
  const fake = fakeVault()
  const state = openStateStore(join(sub, "state"), () => {})
  const reconciler = await Effect.runPromise(
    makeReconciler(configOf([names[0] ?? ""]), state, makeAgentMetrics()).pipe(
      Effect.provide(
        Layer.mergeAll(oneVault(fake.vault), Pkcs12.layer, RecordingMetrics.layer, Logger.layer([])),
      ),
    ),
  )
  await Effect.runPromise(reconciler.triggerAll("start"))
  await expect
    .poll(() => state.get(names[0] ?? "")?.outcome, { timeout: 10_000, interval: 20 })
    .toBe("Succeeded")
  return { fake, state, reconciler, configOf }
}

describe("a deployment's import permit", () => {
  it("taken by a deploy that imports nothing (refused: another writer's version) goes back to the vault", async () => {
    // One import per 0.2 s window: a permit that never comes back stops every later deploy to the vault.
    const { fake, state, reconciler, configOf } = await setUp(["a", "b"], {
      vault_imports_per_window: 1,
      vault_window_seconds: 0.2,
      backoff_base_seconds: 1,
      backoff_max_seconds: 1,
    })
    // The state says a is in place, so its next pass takes its permit only once it finds a must deploy;
    // the deploy is then refused (the served version is not kvdeploy's), and imports nothing.
    fake.foreign("a")
    await Effect.runPromise(reconciler.triggerAll("interval"))
    await expect.poll(() => state.get("a")?.outcome, { timeout: 10_000, interval: 20 }).toBe("Rejected")
    // A new deployment of the same vault needs that vault's one permit.
    await Effect.runPromise(reconciler.apply(configOf(["a", "b"])))
    await Effect.runPromise(reconciler.trigger("b", "reload"))
    await expect.poll(() => state.get("b")?.outcome, { timeout: 10_000, interval: 20 }).toBe("Succeeded")
    expect(fake.imports()).toEqual(["import a", "import b"])
    await Effect.runPromise(reconciler.shutdown)
  }, 30_000)

  it("waited for does not hold a shutdown: the wait is stopped, nothing is sent", async () => {
    // a's import took the vault's one permit for 10 minutes: b, added, waits for it.
    const { fake, reconciler, configOf } = await setUp(["a", "b"], {
      vault_imports_per_window: 1,
      vault_window_seconds: 600,
    })
    await Effect.runPromise(reconciler.apply(configOf(["a", "b"])))
    await Effect.runPromise(reconciler.trigger("b", "reload"))
    await new Promise((resolve) => setTimeout(resolve, 300))
    const stopped = await Effect.runPromise(Effect.timeoutOption(reconciler.shutdown, "10 seconds"))
    expect(Option.isSome(stopped), "shutdown waited for the import window").toBe(true)
    expect(fake.imports()).toEqual(["import a"])
  }, 30_000)
})

describe("a deploy stopped before its import", () => {
  it("stopped during its own snapshot read (the permit's wait took the first read's place) writes nothing", async () => {
    const { fake, state, reconciler } = await setUp(["a"], {
      vault_imports_per_window: 1,
      vault_window_seconds: 2,
    })
    // The certificate is deleted: the state says a is in place, so the pass reads (quickly), then waits
    // for the import window (2 s, longer than a snapshot may be kept), and the deploy reads its own
    // snapshot (slowly). Shutdown comes during that read.
    fake.remove("a")
    const slow = fake.slowReads("next but one")
    await Effect.runPromise(reconciler.trigger("a", "interval"))
    await slow
    fake.events.push("shutdown")
    await Effect.runPromise(reconciler.shutdown)
    const afterShutdown = fake.events.slice(fake.events.indexOf("shutdown"))
    expect(afterShutdown).toContainEqual(expect.stringMatching(/^read \d+ stopped$/))
    expect(afterShutdown.filter((e) => e.startsWith("import "))).toEqual([])
    expect(fake.imports()).toEqual(["import a"])
    // The first deploy's record is what the state keeps: nothing was written since.
    expect(state.get("a")?.outcome).toBe("Succeeded")
  }, 30_000)
})
