/**
 * A source's check (`materialOf`) gives the same answer whether the deploy's
 * codec inspects the material (a deploy is likely) or the agent searches the
 * leaf itself (`leafForKey`): same leaf, chain, facts, or the same problems.
 * A codec whose inspection crashes leaves the agent's own search in charge.
 */
import { createPrivateKey } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PfxCodec } from "@kvdeploy/core"
import { layer as pkcs12Layer } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Source } from "../src/config.js"
import { materialOf, readSource } from "../src/source.js"
import { type Issued, makePki, type Pki } from "./pki.js"

let pki: Pki
let dir: string
let leaf: Issued
let other: Issued
beforeAll(async () => {
  pki = await makePki()
  leaf = await pki.leaf("material.example.test")
  other = await pki.leaf("other.example.test")
  dir = mkdtempSync(join(tmpdir(), "kvdeploy-material-"))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const codec = Effect.runSync(
  Effect.gen(function* () {
    return yield* PfxCodec
  }).pipe(Effect.provide(pkcs12Layer)),
)
const crashing: PfxCodec["Service"] = { ...codec, inspect: () => Effect.die(new Error("inspect crashed")) }

const file = (name: string, text: string): string => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

/** What a check answers, as plain data to compare. */
const answer = async (source: Source, deployWith?: PfxCodec["Service"]) => {
  const bytes = await Effect.runPromise(readSource(source))
  const result = await Effect.runPromise(Effect.result(materialOf(source, bytes, {}, deployWith)))
  if (result._tag === "Failure") return { problems: result.failure.problems }
  const { material, facts } = result.success
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
  return {
    leaf: hex(material.leaf),
    chain: material.chain.map(hex),
    key: hex(Redacted.value(material.key)),
    facts,
  }
}

describe("materialOf", () => {
  it("an encrypted PEM key: says the agent takes no passphrase and what it reads instead, never the key", async () => {
    const encrypted = createPrivateKey(leaf.keyPem).export({
      format: "pem",
      type: "pkcs8",
      cipher: "aes-256-cbc",
      passphrase: "pass phrase",
    })
    const got = await answer({
      _tag: "Pem",
      cert: file("enc.crt", leaf.certPem),
      chain: undefined,
      key: file("enc.key", String(encrypted)),
    })
    expect(got).toEqual({
      problems: [
        expect.stringMatching(
          /^key \S*enc\.key: the private key is encrypted, and the agent reads PEM keys without a passphrase: .* pfx_password_env$/,
        ),
      ],
    })
    expect(JSON.stringify(got)).not.toContain(String(encrypted).split("\n")[2])
  })

  it("a damaged key (its private half altered, its stated public half the leaf's) is a broken source, with or without the deploy's codec", async () => {
    const der = Buffer.from(createPrivateKey(leaf.keyPem).export({ format: "der", type: "pkcs8" }))
    const at = der.indexOf(Buffer.from("0201010420", "hex"))
    expect(at).toBeGreaterThan(0)
    der[at + 5 + 31] = (der[at + 5 + 31] ?? 0) ^ 1
    const body = der
      .toString("base64")
      .match(/.{1,64}/g)
      ?.join("\n")
    const source: Source = {
      _tag: "Pem",
      cert: file("damaged.crt", leaf.certPem),
      chain: undefined,
      key: file("damaged.key", `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`),
    }
    // Without the codec: the comparison-only check that decides "in place" (it took the key for the pair).
    const plain = await answer(source)
    expect(plain).toEqual({ problems: [expect.stringMatching(/^the private key is damaged: /)] })
    expect(await answer(source, codec)).toEqual(plain)
  })

  it("answers alike with the deploy's codec, without it, and with a codec whose inspection crashes", async () => {
    const sources: Array<[string, Source]> = [
      [
        "leaf first, chain file",
        {
          _tag: "Pem",
          cert: file("leaf.crt", leaf.certPem),
          chain: file("chain.crt", pki.caPem),
          key: file("leaf.key", leaf.keyPem),
        },
      ],
      [
        "CA first in the certificate file",
        {
          _tag: "Pem",
          cert: file("ca-first.crt", `${pki.caPem}${leaf.certPem}`),
          chain: undefined,
          key: file("leaf2.key", leaf.keyPem),
        },
      ],
      [
        "a key of another certificate",
        {
          _tag: "Pem",
          cert: file("mismatch.crt", leaf.certPem),
          chain: undefined,
          key: file("other.key", other.keyPem),
        },
      ],
    ]
    for (const [name, source] of sources) {
      const plain = await answer(source)
      expect(await answer(source, codec), name).toEqual(plain)
      expect(await answer(source, crashing), name).toEqual(plain)
    }
    // The cases are what they say: two found the leaf, the mismatch is reported.
    const [first, caFirst, mismatch] = await Promise.all(sources.map(([, s]) => answer(s)))
    expect(first && "facts" in first ? first.facts.x5t : undefined).toBe(leaf.x5t)
    expect(caFirst && "facts" in caFirst ? caFirst.facts.x5t : undefined).toBe(leaf.x5t)
    expect(mismatch).toEqual({
      problems: [
        "the private key matches none of the certificates (mismatched key, or a renewal half-written: certificate and key from different issues)",
      ],
    })
  })

  it("refuses a source with two private keys across its files (exactly one must be there), with the deploy's codec or without", async () => {
    // The certificate file holds the leaf and its own key; the key file holds another key.
    const source: Source = {
      _tag: "Pem",
      cert: file("with-key.crt", `${leaf.certPem}${leaf.keyPem}`),
      chain: undefined,
      key: file("second.key", other.keyPem),
    }
    const expected = { problems: [`key ${source.key}: a second private key (give exactly one)`] }
    expect(await answer(source)).toEqual(expected)
    expect(await answer(source, codec)).toEqual(expected)
    // The same key twice is two keys too: the source names one.
    const twice: Source = { ...source, key: file("same.key", leaf.keyPem) }
    expect(await answer(twice)).toEqual({
      problems: [`key ${twice.key}: a second private key (give exactly one)`],
    })
  })
})
