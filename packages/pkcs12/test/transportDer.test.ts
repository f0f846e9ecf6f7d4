/**
 * The transport PFX (blank password, 1 KDF/MAC iteration: what core imports into Key Vault) is DER,
 * as PKCS#12 requires of its MacData: `iterations INTEGER DEFAULT 1` is left out when it is 1, as
 * `openssl pkcs12 -export -nomaciter` leaves it out. Python `cryptography` (48) reads a PFX with the
 * default written out only through a BER fallback, with a warning that it "may become an exception";
 * here its warnings are errors.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { beforeAll, describe, expect, it } from "vitest"
import { decodePfx, encodePfx } from "../src/index.js"
import { generateKey, hex, makeAuthorities, makeMaterial } from "./fixtures.js"
import { mustSucceed, run, shouldRun } from "./tools.js"

const STRICT_PYTHON_READER = `
import sys, base64, hashlib, warnings
warnings.simplefilter("error")
from cryptography.hazmat.primitives.serialization import pkcs12, Encoding
for line in sys.stdin.read().split():
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(base64.b64decode(line), b"")
        print("ok", hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(), len(extra))
    except Exception as e:
        print("error", type(e).__name__, str(e).replace("\\n", " "))
`

describe.runIf(shouldRun("python") && shouldRun("openssl"))("the transport PFX is DER", () => {
  let material: Awaited<ReturnType<typeof makeMaterial>>
  beforeAll(async () => {
    material = await makeMaterial(await generateKey("P-256"), 3, await makeAuthorities())
  }, 60_000)

  it("Python cryptography reads it with warnings as errors, and kvdeploy reads it back (both profiles)", async () => {
    const encodings = ["modern", "legacy"] as const
    const pfxs = await Promise.all(
      encodings.map((encoding) =>
        Effect.runPromise(encodePfx(material, { encoding, password: Redacted.make(""), iterations: 1 })),
      ),
    )
    const r = mustSucceed(
      "python3 cryptography",
      await run("python3", ["-c", STRICT_PYTHON_READER], {
        input: pfxs.map((p) => Buffer.from(p).toString("base64")).join("\n"),
      }),
    )
    const leafSha = (await import("node:crypto")).createHash("sha256").update(material.leaf).digest("hex")
    expect(r.stdout.toString().trim().split("\n")).toEqual([`ok ${leafSha} 2`, `ok ${leafSha} 2`])
    for (const [i, pfx] of pfxs.entries()) {
      // OpenSSL's view: MAC iteration 1 (the absent field's default).
      const info = await run(
        "openssl",
        ["pkcs12", "-info", "-noout", "-passin", "pass:", ...(i === 1 ? ["-legacy"] : [])],
        {
          input: pfx,
        },
      )
      expect(info.code, info.stderr).toBe(0)
      expect(info.stderr).toMatch(/MAC: sha(256|1), Iteration 1\b/)
      const back = await Effect.runPromise(decodePfx(pfx, Redacted.make("")))
      expect(hex(back.leaf)).toBe(hex(material.leaf))
    }
  }, 60_000)
})
