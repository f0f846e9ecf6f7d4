import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import {
  changeProcessEnv,
  identityEnvironment,
  withIdentityEnvironment,
  withProcessEnv,
} from "../src/testing/index.js"

const SET = "KVDEPLOY_PROCESS_ENV_TEST_SET"
const UNSET = "KVDEPLOY_PROCESS_ENV_TEST_UNSET"

/** Whether `name` is in process.env at all (an unset name, not one set to the text "undefined"). */
const present = (name: string) => Object.hasOwn(process.env, name)

describe("changeProcessEnv", () => {
  it("sets and unsets, then puts back each name as it was: a name unset before is unset again", () => {
    process.env[SET] = "before"
    delete process.env[UNSET]
    try {
      const restore = changeProcessEnv({ [SET]: undefined, [UNSET]: "during" })
      expect(present(SET)).toBe(false)
      expect(process.env[UNSET]).toBe("during")
      restore()
      expect(process.env[SET]).toBe("before")
      expect(present(UNSET)).toBe(false)
    } finally {
      delete process.env[SET]
    }
  })
})

describe("withProcessEnv", () => {
  it.effect("the change holds while the effect runs and is undone after it, when it succeeds", () =>
    Effect.gen(function* () {
      const seen = yield* withProcessEnv(
        { [UNSET]: "during" },
        Effect.sync(() => process.env[UNSET]),
      )
      expect(seen).toBe("during")
      expect(present(UNSET)).toBe(false)
    }),
  )

  it.effect("and when it fails", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(withProcessEnv({ [UNSET]: "during" }, Effect.fail("no")))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(present(UNSET)).toBe(false)
    }),
  )

  it.live("and when it is interrupted", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(withProcessEnv({ [UNSET]: "during" }, Effect.never))
      yield* Effect.yieldNow
      expect(process.env[UNSET]).toBe("during")
      yield* Fiber.interrupt(fiber)
      expect(present(UNSET)).toBe(false)
    }),
  )

  it.effect("a function of process.env is read when the effect starts, not when it is made", () =>
    Effect.gen(function* () {
      const effect = withProcessEnv(
        () => ({ [UNSET]: `${process.env[SET]}-copy` }),
        Effect.sync(() => process.env[UNSET]),
      )
      process.env[SET] = "at-start"
      try {
        expect(yield* effect).toBe("at-start-copy")
      } finally {
        delete process.env[SET]
      }
    }),
  )
})

describe("withIdentityEnvironment", () => {
  it.effect("unsets every identity variable set before, sets the given ones, and puts all back", () =>
    Effect.gen(function* () {
      const restore = changeProcessEnv({
        AZURE_KVDEPLOY_TEST_OTHER: "other",
        IDENTITY_ENDPOINT: "http://127.0.0.1:1/before",
        AZURE_CLIENT_ID: undefined,
      })
      try {
        const during = yield* withIdentityEnvironment(
          { AZURE_CLIENT_ID: "client", NODE_EXTRA_CA_CERTS: "/ca.pem" },
          Effect.sync(() =>
            Object.keys(process.env)
              .filter((k) => /^(AZURE_|IDENTITY_|MSI_|IMDS_)/.test(k))
              .map((k) => [k, process.env[k]]),
          ),
        )
        expect(during).toEqual([["AZURE_CLIENT_ID", "client"]])
        expect(process.env.AZURE_KVDEPLOY_TEST_OTHER).toBe("other")
        expect(process.env.IDENTITY_ENDPOINT).toBe("http://127.0.0.1:1/before")
        expect(present("AZURE_CLIENT_ID")).toBe(false)
      } finally {
        restore()
      }
    }),
  )

  it("leaves NODE_EXTRA_CA_CERTS out: Node.js reads it only when a process starts", () => {
    expect(identityEnvironment({ NODE_EXTRA_CA_CERTS: "/ca.pem" })).not.toHaveProperty("NODE_EXTRA_CA_CERTS")
  })
})
