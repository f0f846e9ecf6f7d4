/**
 * I5: key material never appears in a log line. Deploys run with the
 * `AuditLog.layerLogger` adapter and a JSON logger whose every line is kept;
 * no line may hold the key's secret or bytes, in any encoding.
 */
import { assert, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import { AuditLog, deploy, Metrics } from "../src/index.js"
import {
  Fault,
  InMemoryVault,
  InMemoryVaultHandle,
  issue,
  makeAuthority,
  runAdvancingClock,
  SyntheticCodec,
  withWrongKey,
} from "../src/testing/index.js"
import { managedTags, NAME, request } from "./fixtures.js"

it.effect("no log line written during deploys holds key material", () => {
  const lines: Array<string> = []
  const capture = Logger.make((options) => {
    lines.push(Logger.formatJson.log(options))
  })
  const ca = makeAuthority("redaction")
  const oldCert = issue({ seed: "red-old", issuer: ca })
  const newCert = issue({ seed: "red-new", issuer: ca })
  const world = Layer.mergeAll(
    InMemoryVault.layer.pipe(Layer.provideMerge(SyntheticCodec.layer)),
    Metrics.layerNoop,
    AuditLog.layerLogger,
    Logger.layer([capture]),
  )
  return Effect.gen(function* () {
    const vault = yield* InMemoryVaultHandle
    yield* vault.seed(NAME, oldCert.material, { tags: managedTags })
    vault.script("importVersion", Fault.alter("drop-tags"))
    yield* runAdvancingClock(deploy(request(newCert.material)))
    yield* runAdvancingClock(deploy(request(withWrongKey(newCert))))
    yield* runAdvancingClock(deploy(request(newCert.material, { previousKey: oldCert.material.key })))
    yield* Effect.logInfo("material", newCert.material) // even logging the material itself shows <redacted>
    assert.isAtLeast(lines.length, 4)
    assert.include(lines.join("\n"), "RolledBack")
    for (const k of [oldCert.key, newCert.key]) {
      const forms = [
        k.body.secret,
        Buffer.from(k.bytes).toString("base64"),
        Buffer.from(k.bytes).toString("hex"),
        Array.from(k.bytes).slice(0, 32).join(","),
        // how JSON renders a Uint8Array: {"0":83,"1":89,...}
        Array.from(k.bytes.slice(0, 32), (b, i) => `"${i}":${b}`).join(","),
      ]
      for (const form of forms) for (const line of lines) assert.notInclude(line, form)
    }
  }).pipe(Effect.provide(world))
})
