/**
 * parsePem, inspectMaterial and encodePfx each record one span under the caller's span,
 * ended with the call's outcome: what a deploy's trace shows of them.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Tracer from "effect/Tracer"
import { encodePfx, inspectMaterial, parsePem } from "../src/index.js"
import { generateKey, makeAuthorities, makeMaterial, toPem } from "./fixtures.js"

const recordingTracer = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    },
  })
  return { spans, tracer }
}

const named = (spans: ReadonlyArray<Tracer.NativeSpan>, name: string): Tracer.NativeSpan => {
  const found = spans.filter((s) => s.name === name)
  expect(found, name).toHaveLength(1)
  const span = found[0]
  if (span === undefined) throw new Error(`no span ${name}`)
  return span
}

const parentName = (span: Tracer.NativeSpan): string | undefined =>
  Option.match(span.parent, {
    onNone: () => undefined,
    onSome: (p) => (p._tag === "Span" ? p.name : undefined),
  })

const endedWith = (span: Tracer.NativeSpan): Exit.Exit<unknown, unknown> => {
  expect(span.status._tag, span.name).toBe("Ended")
  if (span.status._tag !== "Ended") throw new Error(`${span.name} not ended`)
  return span.status.exit
}

describe("spans", () => {
  it.effect(
    "inspect and encode each end one span under the caller's, with the encoding and the outcome",
    () =>
      Effect.gen(function* () {
        const key = yield* Effect.promise(() => generateKey("P-256"))
        const material = yield* Effect.promise(async () => makeMaterial(key, 3, await makeAuthorities()))
        const { spans, tracer } = recordingTracer()
        yield* Effect.gen(function* () {
          yield* inspectMaterial(material)
          yield* encodePfx(material, { encoding: "modern", password: Redacted.make(""), iterations: 1 })
        }).pipe(Effect.withSpan("deploy"), Effect.withTracer(tracer))

        const inspect = named(spans, "pkcs12.inspectMaterial")
        const encode = named(spans, "pkcs12.encodePfx")
        expect(parentName(inspect)).toBe("deploy")
        expect(parentName(encode)).toBe("deploy")
        expect(encode.attributes.get("encoding")).toBe("modern")
        expect(Exit.isSuccess(endedWith(inspect))).toBe(true)
        expect(Exit.isSuccess(endedWith(encode))).toBe(true)
        // Each span ends after it starts, and the deploy's ends last.
        const deploy = named(spans, "deploy")
        for (const span of [inspect, encode]) {
          if (span.status._tag !== "Ended" || deploy.status._tag !== "Ended") throw new Error("not ended")
          expect(span.status.endTime >= span.startTime).toBe(true)
          expect(deploy.status.endTime >= span.status.endTime).toBe(true)
        }
      }),
  )

  it.effect("a failing inspect and encode end their spans with the failure", () =>
    Effect.gen(function* () {
      const key = yield* Effect.promise(() => generateKey("P-256"))
      const material = yield* Effect.promise(async () => makeMaterial(key, 2, await makeAuthorities()))
      const broken = { ...material, leaf: material.leaf.subarray(0, 40) }
      const { spans, tracer } = recordingTracer()
      const outcomes = yield* Effect.gen(function* () {
        const inspected = yield* Effect.exit(inspectMaterial(broken))
        const encoded = yield* Effect.exit(
          encodePfx(material, { encoding: "legacy", password: Redacted.make("pw"), iterations: 0 }),
        )
        return { inspected, encoded }
      }).pipe(Effect.withSpan("deploy"), Effect.withTracer(tracer))

      expect(Exit.isFailure(outcomes.inspected)).toBe(true)
      expect(Exit.isFailure(outcomes.encoded)).toBe(true)
      const inspect = named(spans, "pkcs12.inspectMaterial")
      const encode = named(spans, "pkcs12.encodePfx")
      expect(parentName(inspect)).toBe("deploy")
      expect(encode.attributes.get("encoding")).toBe("legacy")
      expect(Exit.isFailure(endedWith(inspect))).toBe(true)
      expect(Exit.isFailure(endedWith(encode))).toBe(true)
    }),
  )

  it.effect("parsePem ends one span under the caller's, with its outcome", () =>
    Effect.gen(function* () {
      const key = yield* Effect.promise(() => generateKey("P-256"))
      const material = yield* Effect.promise(async () => makeMaterial(key, 2, await makeAuthorities()))
      const pem = toPem("CERTIFICATE", material.leaf) + toPem("PRIVATE KEY", key.pkcs8)
      const { spans, tracer } = recordingTracer()
      const outcomes = yield* Effect.gen(function* () {
        const parsed = yield* parsePem(pem)
        const refused = yield* Effect.exit(parsePem("no PEM here"))
        return { parsed, refused }
      }).pipe(Effect.withSpan("agent"), Effect.withTracer(tracer))

      expect(outcomes.parsed.certificates).toHaveLength(1)
      expect(Exit.isFailure(outcomes.refused)).toBe(true)
      const parses = spans.filter((s) => s.name === "pkcs12.parsePem")
      expect(parses).toHaveLength(2)
      expect(parses.map(parentName)).toEqual(["agent", "agent"])
      expect(parses.map((s) => Exit.isSuccess(endedWith(s)))).toEqual([true, false])
    }),
  )
})
