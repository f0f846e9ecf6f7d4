/**
 * Lists page by key marker, as Key Vault's do (a `$skiptoken` in the SDK's
 * recordings names the last item answered): a write between two pages of a
 * list neither repeats an item nor hides one that was there all along. And the
 * certificate list's `includePending`: a certificate whose first create has
 * not completed is listed only when asked for. Driven by the real SDK over
 * HTTPS, raw HTTPS where the wire itself is the subject.
 */
import type { CertificateClient } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, errorOf, raw } from "./support.js"

const VAULT = "markers"
const API = "2025-07-01"
let emulator: Emulator
let certificates: CertificateClient
let origin: string
let token: string

beforeAll(async () => {
  emulator = await start({ vaults: [VAULT], throttling: false, warn: () => {} })
  ;({ certificates } = clients(emulator, VAULT))
  origin = emulator.vault(VAULT).url
  token = emulator.issueToken(emulator.clientSecret.clientId)
}, 60_000)
afterAll(() => emulator?.stop())

const get = (pathAndQuery: string) => raw(emulator, VAULT, "GET", pathAndQuery, { token })
const nameOf = (id: string | undefined) => id?.slice(`${origin}/certificates/`.length) ?? ""

describe("a write between two pages of a list", () => {
  it("a version imported between page 1 and page 2: each version listed once, every earlier one listed", async () => {
    const name = "many-versions"
    // 26 versions: a page of 25 (the SDK's default), then one more.
    for (let i = 0; i < 26; i++) await emulator.state.foreignImport(VAULT, name)
    const before = (emulator.state.versions(VAULT, name) ?? []).map((v) => v.version)
    expect(before).toHaveLength(26)
    const listed: string[] = []
    const pages = certificates.listPropertiesOfCertificateVersions(name).byPage()
    const first = await pages.next()
    for (const v of first.done === true ? [] : first.value) listed.push(v.version ?? "")
    expect(listed).toHaveLength(25)
    // Another writer imports versions meanwhile (ids are random: some sort before page 1's last).
    for (let i = 0; i < 5; i++) await emulator.state.foreignImport(VAULT, name)
    for await (const page of { [Symbol.asyncIterator]: () => pages })
      for (const v of page) listed.push(v.version ?? "")
    expect(new Set(listed).size).toBe(listed.length)
    expect(before.filter((v) => !listed.includes(v))).toEqual([])
  })

  it("a certificate deleted between page 1 and page 2: no other certificate goes missing", async () => {
    const names = Array.from({ length: 27 }, (_, i) => `live-${String(i).padStart(2, "0")}`)
    for (const n of names) await emulator.state.foreignImport(VAULT, n)
    const listed: string[] = []
    const pages = certificates.listPropertiesOfCertificates().byPage()
    const first = await pages.next()
    for (const c of first.done === true ? [] : first.value) listed.push(c.name ?? "")
    expect(listed).toHaveLength(25)
    // A certificate of page 1 is deleted before page 2 is read.
    const gone = listed[0] ?? ""
    await (await certificates.beginDeleteCertificate(gone, { intervalInMs: 20 })).pollUntilDone()
    for await (const page of { [Symbol.asyncIterator]: () => pages })
      for (const c of page) listed.push(c.name ?? "")
    const live = names.filter((n) => !emulator.state.isDeleted(VAULT, n))
    expect(live).toHaveLength(26)
    expect(live.filter((n) => !listed.includes(n))).toEqual([])
    expect(new Set(listed).size).toBe(listed.length)
    await certificates.purgeDeletedCertificate(gone)
  })

  it("the deleted certificates' list pages by marker too: a recovery between pages hides no other", async () => {
    const names = Array.from({ length: 4 }, (_, i) => `bin-${i}`)
    for (const n of names) {
      await emulator.state.foreignImport(VAULT, n)
      await (await certificates.beginDeleteCertificate(n, { intervalInMs: 20 })).pollUntilDone()
    }
    const page1 = await get(`/deletedcertificates?api-version=${API}&maxresults=2`)
    const body1 = page1.json as { value: Array<{ recoveryId: string }>; nextLink: string }
    const first = body1.value.map((e) => e.recoveryId.split("/").at(-1) ?? "")
    expect(first).toEqual(["bin-0", "bin-1"])
    await (await certificates.beginRecoverDeletedCertificate("bin-0", { intervalInMs: 20 })).pollUntilDone()
    const page2 = await get(body1.nextLink.slice(origin.length))
    const rest = (page2.json as { value: Array<{ recoveryId: string }> }).value.map(
      (e) => e.recoveryId.split("/").at(-1) ?? "",
    )
    expect(rest).toEqual(["bin-2", "bin-3"])
  })
})

describe("the $skiptoken", () => {
  beforeAll(async () => {
    for (const n of ["tok-a", "tok-b", "tok-c"]) await emulator.state.foreignImport(VAULT, n)
    for (let i = 0; i < 3; i++) await emulator.state.foreignImport(VAULT, "tok-versions")
  }, 60_000)

  it("names the last item answered, in the form of Key Vault's recorded tokens", async () => {
    const res = await get(`/certificates?api-version=${API}&maxresults=2`)
    const body = res.json as { value: Array<{ id: string }>; nextLink: string }
    const skiptoken = new URL(body.nextLink).searchParams.get("$skiptoken") ?? ""
    const outer = JSON.parse(Buffer.from(skiptoken, "base64url").toString("utf8")) as {
      NextMarker: string
    }
    const [, length, marker] = outer.NextMarker.split("!")
    expect(Number(length)).toBe(marker?.length)
    const last = nameOf(body.value.at(-1)?.id).toUpperCase()
    expect(Buffer.from(marker ?? "", "base64url").toString("utf8")).toBe(
      `${String(`certificate/${last}`.length).padStart(6, "0")}!certificate/${last}!`,
    )
  })

  it("a tampered, foreign or offset token is 400 BadParameter naming $skiptoken", async () => {
    const page1 = await get(`/certificates?api-version=${API}&maxresults=2`)
    const link = new URL((page1.json as { nextLink: string }).nextLink)
    const good = link.searchParams.get("$skiptoken") ?? ""
    const versions = await get(`/certificates/tok-versions/versions?api-version=${API}&maxresults=2`)
    const versionsToken =
      new URL((versions.json as { nextLink: string }).nextLink).searchParams.get("$skiptoken") ?? ""
    const tampered = `${good.slice(0, 10)}${good[10] === "A" ? "B" : "A"}${good.slice(11)}`
    for (const bad of [
      tampered,
      "not a token",
      Buffer.from("offset:2").toString("base64url"),
      // Another list's token: the versions of a certificate, on the certificate list.
      versionsToken,
    ]) {
      const res = await get(
        `/certificates?api-version=${API}&$skiptoken=${encodeURIComponent(bad)}&maxresults=2`,
      )
      expect(res.status, bad).toBe(400)
      expect(errorOf(res.json).code).toBe("BadParameter")
      expect(errorOf(res.json).message).toContain("$skiptoken")
    }
    // And a version list's token on another certificate's versions.
    const other = await get(
      `/certificates/tok-a/versions?api-version=${API}&$skiptoken=${versionsToken}&maxresults=2`,
    )
    expect(other.status).toBe(400)
  })
})

describe("includePending", () => {
  beforeAll(async () => {
    for (const n of ["pend-a", "pend-b"]) await emulator.state.foreignImport(VAULT, n)
  }, 60_000)

  it("a certificate whose create is pending is listed only with includePending=true", async () => {
    const name = "aaa-awaiting-merge"
    await certificates.beginCreateCertificate(name, {
      issuerName: "Unknown",
      subject: "CN=merge.example.test",
    })
    // The SDK sends no includePending unless asked: Key Vault's default, false.
    const mark = emulator.requests.mark()
    const plain: string[] = []
    for await (const c of certificates.listPropertiesOfCertificates()) plain.push(c.name ?? "")
    const sent = emulator.requests.entries({ since: mark, operation: "list" }).filter((e) => !e.challenge)
    expect(sent.every((e) => !e.query.includes("includePending"))).toBe(true)
    expect(plain).not.toContain(name)
    expect(plain).toEqual(expect.arrayContaining(["pend-a", "pend-b"]))

    const asked: Array<{ name?: string; enabled?: boolean; x5t?: Uint8Array }> = []
    for await (const c of certificates.listPropertiesOfCertificates({ includePending: true })) asked.push(c)
    expect(asked.map((c) => c.name)).toEqual([name, ...plain])
    expect(asked[0]?.enabled).toBe(false)
    expect(asked[0]?.x5t).toBeUndefined()

    // On the wire: the next link keeps includePending=true, so every page answers the same list.
    const res = await get(`/certificates?api-version=${API}&includePending=true&maxresults=1`)
    const body = res.json as { value: Array<{ id: string; x5t?: string }>; nextLink: string }
    expect(body.value.map((e) => nameOf(e.id))).toEqual([name])
    expect(body.value[0]?.x5t).toBeUndefined()
    expect(new URL(body.nextLink).searchParams.get("includePending")).toBe("true")
    const falseList = await get(`/certificates?api-version=${API}&includePending=false&maxresults=1`)
    expect((falseList.json as { value: Array<{ id: string }> }).value.map((e) => nameOf(e.id))).toEqual([
      plain[0],
    ])
    const bad = await get(`/certificates?api-version=${API}&includePending=yes`)
    expect(bad.status).toBe(400)
    expect(errorOf(bad.json).message).toContain("includePending")
  })
})
