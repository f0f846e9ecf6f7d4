// list: every page, --managed, a denied list, next-page links that loop or never end, short pages,
// an unusable entry, --expiring-within.
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import { fx, importAsKvdeploy, useCommandsWorld, world } from "./commandsWorld.js"
import { json, runCli, startWorld } from "./harness.js"

useCommandsWorld()

// The two tests run side by side: the second waits (seconds) for a certificate to expire, and the
// first's runs fill that wait. The second lists a vault of its own, so neither sees the other's
// certificates, faults or denied permissions.
describe("list", { concurrent: true }, () => {
  it("list: every page of the vault (25 a page), as another client lists it; a denied list fails (1) in words with the grant", async () => {
    const names = async () => {
      const out: Array<string> = []
      for await (const p of world.sdk().listPropertiesOfCertificates()) out.push(p.name ?? "")
      return out.sort()
    }
    // More than one page of 25, whatever the tests before this one left in the vault.
    // kvdeploy's certificates (its tags), imported at once by the test's SDK client.
    const missing = Math.max(0, 27 - (await names()).length)
    await Promise.all(Array.from({ length: missing }, (_, i) => importAsKvdeploy(`page-${i}`)))
    const expected = await names()
    expect(expected.length).toBeGreaterThan(25)
    const listed = json<{ total: number; matched: number; certificates: Array<{ name: string }> }>(
      await runCli(["list", "--config", world.targetFile("listing"), "--json"], { env: world.env }),
    )
    expect(listed.certificates.map((c) => c.name)).toEqual(expected)
    expect([listed.total, listed.matched]).toEqual([expected.length, expected.length])
    // --managed keeps kvdeploy's certificates only: another writer's certificate is left out.
    await world.emulator.state.foreignImport(world.vault, "list-foreign")
    const managed = json<{
      total: number
      matched: number
      certificates: Array<{ name: string; managedByKvdeploy: boolean }>
    }>(
      await runCli(["list", "--config", world.targetFile("listing"), "--managed", "--json"], {
        env: world.env,
      }),
    )
    expect(managed.certificates.length).toBeGreaterThan(0)
    expect(managed.certificates.every((c) => c.managedByKvdeploy)).toBe(true)
    expect(managed.certificates.map((c) => c.name)).not.toContain("list-foreign")
    expect(managed.matched).toBeLessThan(managed.total)

    world.emulator.rbac.deny(world.env.AZURE_CLIENT_ID ?? "", ["certificates/list"])
    const denied = await runCli(["list", "--config", world.targetFile("listing"), "--json"], {
      env: world.env,
    })
    world.emulator.rbac.reset()
    expect(denied.code, denied.stdout).toBe(1)
    const error = json<{
      error: { title: string; problems: Array<{ field: string; message: string; fix: string }> }
    }>(denied).error
    expect(error.title).toMatch(
      /^listing the vault's certificates failed: forbidden \(needs certificates\/list\)/,
    )
    expect(error.problems[0]).toMatchObject({
      field: "vault",
      message: "refused (VaultForbidden; needs certificates/list)",
    })
    expect(error.problems[0]?.fix).toContain("grant the identity the permission")
    expect(denied.stdout).not.toContain("listCertificates")

    // A next-page link that leads back to a page already read ends the list (it was followed for good).
    const vaultUrl = world.emulator.vault(world.vault).url
    const looping = world.emulator.faults.add({
      operation: "list",
      times: "always",
      action: {
        kind: "setFields",
        fields: { nextLink: `${vaultUrl}/certificates?api-version=2025-07-01&maxresults=25` },
      },
    })
    const since = world.emulator.requests.mark()
    const loop = await runCli(["list", "--config", world.targetFile("listing"), "--json"], { env: world.env })
    world.emulator.faults.remove(looping)
    expect(loop.code, loop.stdout).toBe(1)
    const loopError = json<{ error: { title: string; problems: Array<{ message: string; fix: string }> } }>(
      loop,
    ).error
    expect(loopError.title).toContain("its next-page link leads back to a page already read")
    expect(loopError.problems[0]?.message).toBe("an answer kvdeploy cannot use (VaultMalformedAnswer)")
    expect(loopError.problems[0]?.fix).toContain("a proxy")
    expect(
      world.emulator.requests
        .entries({ vault: world.vault, since })
        .filter((e) => e.operation === "list" && !e.challenge),
    ).toHaveLength(2)

    // Next-page links that are each new but never end stop at --max-pages: what was read is printed,
    // said to be incomplete, and the command exits 1. (The first page's own link is followed.)
    const everything = await names()
    /** `list` with this cap, every list answer after its first page's made endless. */
    const listEndless = async (cap: string, ...more: Array<string>) => {
      const endless = world.emulator.faults.add({
        operation: "list",
        skip: 1,
        times: "always",
        action: { kind: "endlessList" },
      })
      const ran = await runCli(
        ["list", "--config", world.targetFile("listing"), "--max-pages", cap, ...more],
        {
          env: world.env,
        },
      )
      world.emulator.faults.remove(endless)
      return ran
    }
    const endlessSince = world.emulator.requests.mark()
    const capped = await listEndless("5", "--json")
    const cappedText = await listEndless("4")
    expect(capped.code, capped.stdout).toBe(1)
    const cappedDoc = json<{
      complete: boolean
      total: number
      certificates: Array<{ name: string }>
      incomplete: { pages: number; problem: string }
    }>(capped)
    expect(cappedDoc.complete).toBe(false)
    expect(cappedDoc.certificates.map((c) => c.name)).toEqual(everything)
    expect(cappedDoc.incomplete.pages).toBe(5)
    expect(cappedDoc.incomplete.problem).toBe(
      `the list did not end after 5 pages (${everything.length} certificates read): the vault holds more than that, or a proxy or service between this machine and the vault keeps answering next-page links; \`--max-pages 10\` reads further`,
    )
    expect(cappedText.code, cappedText.stdout).toBe(1)
    expect(cappedText.stdout).toContain(
      `: ${everything.length} of at least ${everything.length} certificates`,
    )
    expect(cappedText.stdout).toContain("incomplete: the list did not end after 4 pages")
    // 5 + 4 list requests: each run stopped at its cap, not one page later.
    expect(
      world.emulator.requests
        .entries({ vault: world.vault, since: endlessSince })
        .filter((e) => e.operation === "list" && !e.challenge),
    ).toHaveLength(9)
    // A list that ends says so; a cap that is not a number of pages is refused before any request.
    expect(
      json<{ complete: boolean }>(
        await runCli(["list", "--config", world.targetFile("listing"), "--json"], { env: world.env }),
      ).complete,
    ).toBe(true)
    for (const bad of ["0", "-3", "2.5", "lots", "1000001"]) {
      const refused = await runCli(
        ["list", "--config", world.targetFile("listing"), "--max-pages", bad, "--json"],
        {
          env: world.env,
        },
      )
      expect(refused.code, refused.stdout).toBe(2)
      expect(
        json<{ error: { problems: Array<{ field: string; message: string; fix: string }> } }>(refused).error
          .problems[0],
      ).toEqual({
        field: "--max-pages",
        message: `"${bad}" is not a number of pages from 1 to 1000000`,
        fix: "write a whole number such as 4000 (each page holds up to 25 certificates)",
      })
    }

    // Key Vault may answer short pages, even an empty first one, with a next link
    // (Azure/azure-sdk-for-go#10711): followed to the end, the list is the whole list, complete.
    const shortPages = () => [
      world.emulator.faults.add({ operation: "list", times: 2, action: { kind: "shortPage", items: 0 } }),
      world.emulator.faults.add({
        operation: "list",
        times: "always",
        action: { kind: "shortPage", items: 3 },
      }),
    ]
    const whole = await names()
    let faults = shortPages()
    const shortSince = world.emulator.requests.mark()
    const short = await runCli(["list", "--config", world.targetFile("listing"), "--json"], {
      env: world.env,
    })
    for (const id of faults) world.emulator.faults.remove(id)
    expect(short.code, short.stdout).toBe(0)
    const shortDoc = json<{ complete: boolean; total: number; certificates: Array<{ name: string }> }>(short)
    expect(shortDoc.complete).toBe(true)
    expect(shortDoc.certificates.map((c) => c.name)).toEqual(whole)
    expect(
      world.emulator.requests
        .entries({ vault: world.vault, since: shortSince })
        .filter((e) => e.operation === "list" && !e.challenge),
    ).toHaveLength(2 + Math.ceil(shortDoc.total / 3))
    // Under a page cap the short pages reach, what was read is not presented as the list: incomplete, exit 1.
    faults = shortPages()
    const shortCapped = await runCli(
      ["list", "--config", world.targetFile("listing"), "--max-pages", "3", "--json"],
      { env: world.env },
    )
    for (const id of faults) world.emulator.faults.remove(id)
    expect(shortCapped.code, shortCapped.stdout).toBe(1)
    const shortCappedDoc = json<{
      complete: boolean
      total: number
      incomplete: { pages: number; problem: string }
    }>(shortCapped)
    expect([shortCappedDoc.complete, shortCappedDoc.total, shortCappedDoc.incomplete.pages]).toEqual([
      false,
      3,
      3,
    ])
    expect(shortCappedDoc.incomplete.problem).toMatch(
      /^the list did not end after 3 pages \(3 certificates read\)/,
    )

    // An entry without its facts is named apart; the others are listed (the whole list failed before).
    const odd = world.emulator.faults.add({
      operation: "list",
      action: { kind: "omitFields", fields: ["value.0.attributes.enabled"] },
    })
    const partial = await runCli(["list", "--config", world.targetFile("listing"), "--json"], {
      env: world.env,
    })
    world.emulator.faults.remove(odd)
    expect(partial.code, partial.stdout).toBe(0)
    const partialDoc = json<{ total: number; unusable: Array<{ name: string; problem: string }> }>(partial)
    expect(partialDoc.unusable).toHaveLength(1)
    expect(partialDoc.total).toBe(expected.length)
    expect(partialDoc.unusable[0]?.problem).toMatch(
      /cannot be used \(lacks `attributes\.enabled`; .*`kvdeploy show --name /,
    )
  })

  it("list --expiring-within keeps a certificate that has already expired, and says so", async ({
    onTestFinished,
  }) => {
    const world = await startWorld("kvdeploy-list-expired")
    onTestFinished(() => world.stop())
    // Key Vault refuses to import an expired certificate, so this one is imported seconds before it
    // expires, by the test's own SDK client (the CLI's start-up could outlast its validity), with
    // everything else done first: the other certificate imported, the client holding its token.
    const chain = [fx.pki.intermediate, fx.pki.root].map((c) => new Uint8Array(c.certificate.rawData))
    const pfxOf = (leaf: Awaited<ReturnType<typeof fx.leaf>>) =>
      Effect.runPromise(
        encodePfx(
          { leaf: new Uint8Array(leaf.certificate.rawData), chain, key: Redacted.make(leaf.pkcs8) },
          { encoding: "modern", password: Redacted.make(""), iterations: 1 },
        ),
      )
    const client = world.sdk()
    await client.importCertificate("list-lasting", await pfxOf(await fx.leaf()), { password: "" })
    const expiring = await fx.leaf({ notAfterDays: 5 / 86_400 })
    await client.importCertificate("list-expired", await pfxOf(expiring), { password: "" })
    // X.509 times have whole seconds: wait until the vault's expiry is past.
    await new Promise((r) => setTimeout(r, expiring.certificate.notAfter.getTime() + 1_000 - Date.now()))

    const args = ["list", "--config", world.targetFile("listing"), "--expiring-within", "1d"]
    const listed = json<{
      certificates: Array<{ name: string; expiresAt?: string }>
      expiringWithin?: { given: string; ms: number }
    }>(await runCli([...args, "--json"], { env: world.env }))
    // The window the text states ("expiring within 1d") is in the JSON too.
    expect(listed.expiringWithin).toEqual({ given: "1d", ms: 86_400_000 })
    const expired = listed.certificates.find((c) => c.name === "list-expired")
    expect(expired, JSON.stringify(listed)).toBeDefined()
    expect(Date.parse(expired?.expiresAt ?? "")).toBeLessThan(Date.now())
    expect(listed.certificates.map((c) => c.name)).not.toContain("list-lasting")
    const text = await runCli(args, { env: world.env })
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toMatch(/list-expired .*expired \d{4}-\d{2}-\d{2} UTC \(\d+ (s|min) ago\)/)
  })
})
