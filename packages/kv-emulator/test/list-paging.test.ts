/**
 * The certificate list and the versions list, page by page on the wire: each
 * page's bytes are exactly `{"value":[...],"nextLink":...}` with the items of
 * the full list (built here from the GET bundles of each certificate or
 * version) in Key Vault's order, the `nextLink` of every page but the last an
 * absolute URL with api-version, a `$skiptoken` naming the page's last item
 * (list-markers.test.ts) and `maxresults`, and
 * `null` on the last. The pages' concatenation is the full list.
 */
import type { CertificateClient } from "@azure/keyvault-certificates"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, start } from "../src/index.js"
import { clients, errorOf, makeMaterial, pemBundle, raw } from "./support.js"

const VAULT = "paging"
const API = "2025-07-01"
let emulator: Emulator
let certificates: CertificateClient
let origin: string
let token: string

/** 60 live certificates (mixed case, tagged and untagged, one disabled, one with 3 versions) and 2 soft-deleted. */
const live = Array.from({ length: 60 }, (_, i) => (i % 7 === 3 ? `Cert-${i}` : `cert-${i}`))
const deleted = ["cert-gone", "Cert-zz-gone"]
const MULTI = "cert-12"

beforeAll(async () => {
  emulator = await start({ vaults: [VAULT], warn: () => {} })
  ;({ certificates } = clients(emulator, VAULT))
  origin = emulator.vault(VAULT).url
  token = emulator.issueToken(emulator.clientSecret.clientId)
  const material = await makeMaterial({ cn: "paging.example.test" })
  const pem = Buffer.from(pemBundle(material))
  for (const [i, name] of [...live, ...deleted].entries())
    await certificates.importCertificate(name, pem, {
      policy: { contentType: "application/x-pem-file" },
      ...(i % 2 === 0 ? { tags: { n: String(i) } } : {}),
    })
  for (let i = 0; i < 2; i++)
    await certificates.importCertificate(MULTI, pem, {
      policy: { contentType: "application/x-pem-file" },
      tags: { round: String(i) },
    })
  const disabled = await certificates.getCertificate("cert-5")
  await certificates.updateCertificateProperties("cert-5", disabled.properties.version ?? "", {
    enabled: false,
  })
  for (const name of deleted)
    await (await certificates.beginDeleteCertificate(name, { intervalInMs: 20 })).pollUntilDone()
}, 120_000)
afterAll(() => emulator?.stop())

const get = async (pathAndQuery: string) => {
  const res = await raw(emulator, VAULT, "GET", pathAndQuery, { token })
  return res
}

interface Bundle {
  readonly id: string
  readonly x5t: string
  readonly attributes: unknown
  readonly tags?: unknown
}

/** A list item as Key Vault renders it from a certificate bundle: id (without the version for the certificate list), x5t, attributes, tags. */
const itemOf = (bundle: Bundle, id: string) => ({
  id,
  x5t: bundle.x5t,
  attributes: bundle.attributes,
  ...(bundle.tags !== undefined ? { tags: bundle.tags } : {}),
})

/** Follow nextLink from `first`, answering every page's text and parsed body. */
const pagesFrom = async (first: string) => {
  const pages: Array<{ text: string; body: { value: unknown[]; nextLink: string | null } }> = []
  let next: string | null = first
  while (next !== null && pages.length < 100) {
    const res = await get(next.startsWith(origin) ? next.slice(origin.length) : next)
    expect(res.status).toBe(200)
    const body = res.json as { value: unknown[]; nextLink: string | null }
    pages.push({ text: res.text, body })
    next = body.nextLink
  }
  return pages
}

/** A `$skiptoken` naming `marker` (`certificate/NAME`), in the form of Key Vault's recorded tokens. */
const skiptoken = (marker: string) => {
  const m = Buffer.from(`${String(marker.length).padStart(6, "0")}!${marker}!`).toString("base64url")
  return Buffer.from(JSON.stringify({ NextMarker: `2!${m.length}!${m}`, TargetLocation: 0 })).toString(
    "base64url",
  )
}

describe("list paging on the wire", () => {
  it("each page of the certificate list is the full list's slice, byte for byte, with nextLink as before", async () => {
    const order = [...live].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1))
    const full: unknown[] = []
    for (const name of order) {
      const res = await get(`/certificates/${name}/?api-version=${API}`)
      expect(res.status).toBe(200)
      full.push(itemOf(res.json as Bundle, `${origin}/certificates/${name}`))
    }
    for (const max of [7, 25, undefined]) {
      const size = max ?? 25
      const pages = await pagesFrom(
        `/certificates?api-version=${API}${max === undefined ? "" : `&maxresults=${max}`}`,
      )
      expect(pages.length).toBe(Math.ceil(full.length / size))
      pages.forEach((page, i) => {
        const next = (i + 1) * size
        const nextLink =
          next < full.length
            ? `${origin}/certificates?api-version=${API}&$skiptoken=${skiptoken(`certificate/${order[next - 1]?.toUpperCase()}`)}&maxresults=${size}`
            : null
        expect(page.text).toBe(JSON.stringify({ value: full.slice(i * size, next), nextLink }))
      })
      expect(pages.flatMap((p) => p.body.value)).toEqual(full)
    }
    // The disabled one is listed disabled, the multi-version one with its latest version's tags.
    const items = full as Array<{ id: string; attributes: { enabled: boolean }; tags?: unknown }>
    expect(items.find((e) => e.id.endsWith("/cert-5"))?.attributes.enabled).toBe(false)
    expect(items.find((e) => e.id.endsWith(`/${MULTI}`))?.tags).toEqual({ round: "1" })
    expect(items.some((e) => deleted.some((d) => e.id.endsWith(`/${d}`)))).toBe(false)
  })

  it("a skiptoken past the end answers an empty last page; a bad one or a bad maxresults is 400", async () => {
    const past = await get(
      `/certificates?api-version=${API}&$skiptoken=${skiptoken("certificate/ZZZ-PAST-THE-END")}&maxresults=5`,
    )
    expect(past.text).toBe(JSON.stringify({ value: [], nextLink: null }))
    const bad = await get(
      `/certificates?api-version=${API}&$skiptoken=${Buffer.from("offset:1").toString("base64url")}`,
    )
    expect(bad.status).toBe(400)
    expect(errorOf(bad.json).code).toBe("BadParameter")
    const tooMany = await get(`/certificates?api-version=${API}&maxresults=26`)
    expect(tooMany.status).toBe(400)
  })

  it("the certificate list follows the store: a new, a deleted and a recovered certificate", async () => {
    const names = async () =>
      (await pagesFrom(`/certificates?api-version=${API}`))
        .flatMap((p) => p.body.value as Array<{ id: string }>)
        .map((e) => e.id.slice(`${origin}/certificates/`.length))
    const before = await names()
    const material = await makeMaterial({ cn: "late.example.test" })
    await certificates.importCertificate("aaa-late", Buffer.from(pemBundle(material)), {
      policy: { contentType: "application/x-pem-file" },
    })
    expect(await names()).toEqual(["aaa-late", ...before])
    await (await certificates.beginDeleteCertificate("aaa-late", { intervalInMs: 20 })).pollUntilDone()
    expect(await names()).toEqual(before)
    await (
      await certificates.beginRecoverDeletedCertificate("aaa-late", { intervalInMs: 20 })
    ).pollUntilDone()
    expect(await names()).toEqual(["aaa-late", ...before])
  })

  it("each page of the versions list is the full list's slice, byte for byte", async () => {
    const versions = emulator.state.versions(VAULT, MULTI) ?? []
    expect(versions.length).toBe(3)
    const full: unknown[] = []
    const sorted = [...versions].sort((a, b) => (a.version < b.version ? -1 : 1))
    for (const v of sorted) {
      const res = await get(`/certificates/${MULTI}/${v.version}?api-version=${API}`)
      const bundle = res.json as Bundle
      full.push(itemOf(bundle, bundle.id))
    }
    const pages = await pagesFrom(`/certificates/${MULTI}/versions?api-version=${API}&maxresults=2`)
    expect(pages.map((p) => p.text)).toEqual([
      JSON.stringify({
        value: full.slice(0, 2),
        nextLink: `${origin}/certificates/${MULTI}/versions?api-version=${API}&$skiptoken=${skiptoken(`certificate/${MULTI.toUpperCase()}/${sorted[1]?.version.toUpperCase()}`)}&maxresults=2`,
      }),
      JSON.stringify({ value: full.slice(2), nextLink: null }),
    ])
  })
})

describe("short and empty pages (shortPage fault), as Key Vault may answer them (Azure/azure-sdk-for-go#10711)", () => {
  const namesOf = (pages: ReadonlyArray<{ body: { value: unknown[] } }>) =>
    pages.flatMap((p) => p.body.value.map((v) => (v as { id: string }).id.split("/").at(-1)))

  it("an empty first page keeps its nextLink, short pages follow, and the pages together are the whole list", async () => {
    const whole = namesOf(await pagesFrom(`/certificates?api-version=${API}`))
    expect(whole.length).toBeGreaterThan(25)
    emulator.faults.add({
      operation: "list",
      vault: VAULT,
      times: 2,
      action: { kind: "shortPage", items: 0 },
    })
    emulator.faults.add({
      operation: "list",
      vault: VAULT,
      times: 2,
      action: { kind: "shortPage", items: 3 },
    })
    try {
      const pages = await pagesFrom(`/certificates?api-version=${API}`)
      expect(pages[0]?.body).toEqual({ value: [], nextLink: expect.stringContaining("$skiptoken=") })
      expect(pages[0]?.body.nextLink).toContain("&maxresults=25")
      // Two empty pages in a row: each with a link of its own (the same link twice would be a loop).
      expect(pages[1]?.body.value).toEqual([])
      expect(pages[1]?.body.nextLink).not.toBe(pages[0]?.body.nextLink)
      expect(pages.slice(2, 4).map((p) => p.body.value.length)).toEqual([3, 3])
      // Then full pages again, and the list ends: nothing lost, nothing repeated.
      expect(pages[4]?.body.value.length).toBe(25)
      expect(pages.at(-1)?.body.nextLink).toBeNull()
      expect(namesOf(pages)).toEqual(whole)
    } finally {
      emulator.faults.clear()
    }
  })

  it("the SDK lists every certificate and version through short and empty pages", async () => {
    const listed = async () => {
      const names: string[] = []
      for await (const p of certificates.listPropertiesOfCertificates()) names.push(p.name ?? "")
      return names
    }
    const whole = await listed()
    emulator.faults.add({
      operation: "list",
      vault: VAULT,
      times: "always",
      action: { kind: "shortPage", items: 4 },
    })
    emulator.faults.add({
      operation: "versions",
      vault: VAULT,
      name: MULTI,
      times: "always",
      action: { kind: "shortPage", items: 1 },
    })
    try {
      const mark = emulator.requests.mark()
      expect(await listed()).toEqual(whole)
      const pages = emulator.requests.entries({ since: mark, operation: "list" }).filter((e) => !e.challenge)
      expect(pages.length).toBe(Math.ceil(whole.length / 4))
      const versions: string[] = []
      for await (const v of certificates.listPropertiesOfCertificateVersions(MULTI))
        versions.push(v.version ?? "")
      expect(versions.sort()).toEqual(
        (emulator.state.versions(VAULT, MULTI) ?? []).map((v) => v.version).sort(),
      )
    } finally {
      emulator.faults.clear()
    }
  })

  it("a short page of an empty list is its only page; a shortPage rule is refused off a list or out of range", async () => {
    emulator.faults.add({ operation: "versions", vault: VAULT, action: { kind: "shortPage", items: 0 } })
    try {
      const none = await get(`/certificates/never-there/versions?api-version=${API}`)
      expect(none.text).toBe(JSON.stringify({ value: [], nextLink: null }))
    } finally {
      emulator.faults.clear()
    }
    expect(() =>
      emulator.faults.add({ operation: "getLatest", action: { kind: "shortPage", items: 1 } }),
    ).toThrow(/shortPage is a list operation's fault \(list, versions, listDeleted\), not getLatest's/)
    for (const items of [-1, 25, 1.5, "3"])
      expect(() =>
        emulator.faults.add({ operation: "list", action: { kind: "shortPage", items } as never }),
      ).toThrow(/shortPage action needs items: a whole number from 0 \(an empty page\) to 24/)
  })
})
