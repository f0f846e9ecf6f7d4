/**
 * `--chain` given the leaf's own file (`--chain cert.pem` where `chain.pem` belongs): the copy of the
 * leaf is dropped, and the warning says the chain held only the leaf, not that none was given.
 */
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Issued } from "../src/cli/throwawayPki.js"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { json, runCli, startWorld, type World } from "./harness.js"

let world: World
let fx: Fixtures
let leaf: Issued
/** An RSA leaf: front_door refuses EC keys. */
let rsaLeaf: Issued

beforeAll(async () => {
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-chain-of-leaf"), makeFixtures()])
  ;[leaf, rsaLeaf] = await Promise.all([fx.leaf(), fx.leaf({ key: { kind: "RSA", bits: 2048 } })])
}, 60_000)
afterAll(() => world?.stop())

interface Warning {
  readonly field: string
  readonly message: string
}

describe("--chain given the leaf's own file", () => {
  it("plan and deploy say the chain holds only the leaf; without --chain, none given", async () => {
    const certFile = world.file("cert.pem", leaf.certPem)
    const keyFile = world.file("privkey.pem", leaf.keyPem)
    const args = (command: string, ...more: ReadonlyArray<string>) => [
      command,
      "--config",
      world.targetFile("chain-of-leaf"),
      "--cert",
      certFile,
      "--key",
      keyFile,
      ...more,
    ]
    const chainWarning = (doc: { warnings?: ReadonlyArray<Warning> }) =>
      (doc.warnings ?? []).filter((w) => w.field === "chain").map((w) => w.message)

    const planned = await runCli(args("plan", "--chain", certFile, "--json"), { env: world.env })
    expect(planned.code, planned.stdout + planned.stderr).toBe(0)
    const [message, ...more] = chainWarning(json(planned))
    expect(more).toEqual([])
    expect(message).toMatch(
      /^holds only the leaf itself \(each certificate given as the chain is a copy of the leaf\), and the leaf is issued by /,
    )

    const deployed = await runCli(args("deploy", "--chain", certFile, "--json"), { env: world.env })
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0)
    expect(chainWarning(json(deployed))).toEqual([message])

    const withoutChain = await runCli(args("plan", "--json"), { env: world.env })
    expect(withoutChain.code, withoutChain.stdout + withoutChain.stderr).toBe(0)
    expect(chainWarning(json(withoutChain))).toEqual([
      expect.stringMatching(/^none given, and the leaf is issued by /),
    ])
  })

  it("with front_door among the consumers, its one chain warning says the same", async () => {
    const certFile = world.file("fd-cert.pem", rsaLeaf.certPem)
    const planned = await runCli(
      [
        "plan",
        "--config",
        world.targetFile("chain-of-leaf-fd", { consumers: ["front_door"] }),
        "--cert",
        certFile,
        "--chain",
        certFile,
        "--key",
        world.file("fd-privkey.pem", rsaLeaf.keyPem),
        "--json",
      ],
      { env: world.env },
    )
    expect(planned.code, planned.stdout + planned.stderr).toBe(0)
    const chain = (json<{ warnings?: ReadonlyArray<Warning> }>(planned).warnings ?? []).filter(
      (w) => w.field === "chain",
    )
    expect(chain.map((w) => w.message)).toEqual([
      expect.stringMatching(
        /^holds only the leaf itself \(each certificate given as the chain is a copy of the leaf\), and the leaf is issued by .*: Azure Front Door/,
      ),
    ])
  })
})

describe("a PFX of the leaf alone (exported without its chain)", () => {
  it("plan's chain warning tells to export the PFX again with the chain, not to take fullchain.pem", async () => {
    const derOf = (pem: string) =>
      new Uint8Array(Buffer.from(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64"))
    const pfx = await Effect.runPromise(
      encodePfx(
        { leaf: derOf(leaf.certPem), chain: [], key: Redacted.make(leaf.pkcs8) },
        { encoding: "modern", password: Redacted.make("pfx pass") },
      ),
    )
    const planned = await runCli(
      [
        "plan",
        "--config",
        world.targetFile("leaf-alone-pfx"),
        "--pfx",
        world.file("leaf-alone.pfx", pfx),
        "--pfx-password-env",
        "LEAF_PFX_PASS",
        "--json",
      ],
      { env: { ...world.env, LEAF_PFX_PASS: "pfx pass" } },
    )
    expect(planned.code, planned.stdout + planned.stderr).toBe(0)
    const chain = (
      json<{ warnings?: ReadonlyArray<Warning & { fix: string }> }>(planned).warnings ?? []
    ).filter((w) => w.field === "chain")
    expect(chain).toEqual([
      {
        field: "chain",
        message: expect.stringMatching(/^none given, and the leaf is issued by /),
        fix: "export the PFX again with the issuer's chain in it (openssl pkcs12 -export -inkey key.pem -in cert.pem -certfile chain.pem, or the exporting tool's option to include the chain), unless a root your clients trust issues the leaf directly",
      },
    ])
  })
})
