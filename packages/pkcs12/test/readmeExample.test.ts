/**
 * The README's throwaway-PKI example ("Test PKI" block), taken from README.md itself and run: the
 * bundle it builds is offered for tests, so it must be material kvdeploy deploys. Core's preflight
 * (what a deploy runs before any vault request, on the real clock) with this package's codec must
 * pass it. The
 * README's earlier example signed an RSA leaf with a P-256 CA, which Key Vault refuses and the
 * preflight rejected: a team that copied it into docs/library.md's emulator recipe got Rejected.
 */
import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { preflight, validateTargetConfigSync } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Pkcs12 from "../src/index.js"
import * as testing from "../src/testing/index.js"

/** The README's one ts block importing @kvdeploy/pkcs12/testing, as its lines. */
const readmeBlock = (): string => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8")
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? "")
    .filter((b) => b.includes('from "@kvdeploy/pkcs12/testing"'))
  assert.strictEqual(blocks.length, 1, "one README example uses @kvdeploy/pkcs12/testing")
  return blocks[0] ?? ""
}

/** Runs the block (its import replaced by the module itself) and answers its `bundle`. */
const runBlock = async (block: string): Promise<string> => {
  const body = block.replace(
    /^import \{([^}]*)\} from "@kvdeploy\/pkcs12\/testing"\n/m,
    "const {$1} = testing\n",
  )
  assert.notInclude(body, "import ", "the block's only import is the testing module")
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
    ...args: Array<string>
  ) => (t: typeof testing) => Promise<string>
  return new AsyncFunction("testing", `${body}\nreturn bundle`)(testing)
}

describe("README: Test PKI example", () => {
  it.live("builds a bundle that parses to material core's preflight passes", () =>
    Effect.gen(function* () {
      const bundle = yield* Effect.promise(() => runBlock(readmeBlock()))
      const material = yield* Pkcs12.materialFromPem(yield* Pkcs12.parsePem(bundle))
      assert.strictEqual(material.chain.length, 1)
      const target = validateTargetConfigSync({
        vault_url: "https://example.vault.azure.net",
        certificate_name: "app",
        credential_mode: "default",
      })
      if (Result.isFailure(target)) return assert.fail(target.failure.message)
      const checked = yield* preflight({ target: target.success, material, certificateId: "readme" }).pipe(
        Effect.provide(Pkcs12.layer),
      )
      assert.deepStrictEqual(checked._tag === "Rejected" ? checked.problems : [], [])
      assert.strictEqual(checked._tag, "Passed")
    }),
  )
})
