/**
 * The PFX a deploy puts on the wire, end to end against @kvdeploy/kv-emulator:
 * core builds it with `transportPfxOptions` (blank password, one KDF/MAC
 * iteration), the adapter sends it through the real SDK, and OpenSSL reads it
 * with the blank password. The bytes are tied to the wire by the emulator's
 * request log, which keeps the SHA-256 of the import body's `value` (never the
 * value itself). OpenSSL gets the PFX on stdin and answers on pipes: no key
 * material touches the disk, and none reaches an assertion message.
 */
import { spawnSync } from "node:child_process"
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from "node:crypto"
import type { TokenCredential } from "@azure/core-auth"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import {
  type ImportRequest,
  type PfxEncoding,
  type Pkcs12Import,
  transportIterations,
  Vault,
} from "@kvdeploy/core"
import type { Emulator } from "@kvdeploy/kv-emulator"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import {
  credentialFor,
  deployOnce,
  fastReads,
  startEmulator,
  targetFor,
  worldLayer,
} from "./support/emulator.js"
import { type Issuer, makeCa, makeMaterial } from "./support/pki.js"

const VAULT = "transport"
const opensslPresent = spawnSync("openssl", ["version"], { stdio: "ignore" }).status === 0
if (!opensslPresent && process.env.CI !== "true")
  console.warn("\n!!! SKIPPING the OpenSSL reading of the import PFX: openssl is not installed\n")

let emulator: Emulator
let ca: Issuer
let credential: TokenCredential

beforeAll(async () => {
  emulator = await startEmulator({ vaults: [VAULT] })
  ca = await makeCa()
  credential = await Effect.runPromise(credentialFor(emulator, targetFor(emulator, VAULT, "any")))
})
afterAll(() => emulator?.stop())

/** OpenSSL's reading of a PFX given on stdin with the password `pass` (never a file). */
const openssl = (pfx: Uint8Array, pass: string, printKey: boolean) => {
  const r = spawnSync(
    "openssl",
    ["pkcs12", "-info", ...(printKey ? ["-nodes"] : ["-noout"]), "-passin", `pass:${pass}`],
    { input: pfx, timeout: 30_000 },
  )
  return { status: r.status, info: r.stderr.toString("utf8"), out: r.stdout.toString("utf8") }
}

describe.skipIf(!opensslPresent && process.env.CI !== "true")("the import PFX on the wire", () => {
  for (const encoding of ["modern", "legacy"] as const satisfies ReadonlyArray<PfxEncoding>) {
    it.live(
      `pfx_encoding ${encoding}: blank password, MAC and key derivations of ${transportIterations} iteration, read by OpenSSL`,
      () =>
        Effect.gen(function* () {
          const target = targetFor(emulator, VAULT, `transport-${encoding}`, { pfx_encoding: encoding })
          const material = yield* Effect.promise(() => makeMaterial(ca))
          const since = emulator.requests.mark()
          // What core hands the adapter's importVersion (the adapter itself sends it).
          const sent: Array<ImportRequest> = []
          const outcome = yield* Effect.gen(function* () {
            const vault = yield* Vault
            return yield* deployOnce(target, material, `id-${encoding}`).pipe(
              fastReads,
              Effect.provideService(Vault, {
                ...vault,
                importVersion: (r) => {
                  sent.push(r)
                  return vault.importVersion(r)
                },
              }),
            )
          }).pipe(Effect.provide(worldLayer(emulator, target, credential)))
          expect(outcome._tag).toBe("Succeeded")
          expect(sent).toHaveLength(1)
          const request = sent[0] as Pkcs12Import
          expect(Redacted.value(request.password)).toBe("")

          // These bytes are the import's value on the wire: the emulator's log has their hash.
          const imports = emulator.requests
            .entries({ vault: VAULT, since })
            .filter((e) => !e.challenge && e.operation === "import")
          expect(imports).toHaveLength(1)
          const wire = imports[0]!.request
          expect(wire?.passwordSent).toBe(false)
          expect(wire?.valueIsPem).toBe(false)
          expect(wire?.valueSha256).toBe(
            createHash("sha256").update(Buffer.from(request.pfx).toString("base64")).digest("hex"),
          )

          // OpenSSL checks the MAC with the blank password and names every iteration count.
          const read = openssl(request.pfx, "", false)
          expect(read.status, read.info).toBe(0)
          expect(read.info).toMatch(/^MAC: sha(1|256), Iteration 1$/m)
          const iterations = [...read.info.matchAll(/Iteration (\d+)/g)].map((m) => Number(m[1]))
          // The MAC, the certificates' encryption and the key bag's: one iteration each.
          expect(iterations).toEqual([1, 1, 1])
          expect(read.info).toMatch(/^Shrouded Keybag: /m)

          // It decrypts the key bag with the blank password too: the key it finds is the leaf's.
          const withKey = openssl(request.pfx, "", true)
          expect(withKey.status, withKey.info).toBe(0)
          const keyPem = /-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/.exec(withKey.out)?.[0]
          expect(keyPem === undefined ? "no private key in OpenSSL's output" : "private key found").toBe(
            "private key found",
          )
          const matchesLeaf = createPublicKey(createPrivateKey(keyPem ?? "")).equals(
            new X509Certificate(material.leaf).publicKey,
          )
          expect(matchesLeaf).toBe(true)

          // And the password really is the blank one: another fails the MAC check.
          expect(openssl(request.pfx, "not-the-password", false).status).not.toBe(0)
        }),
    )
  }
})
