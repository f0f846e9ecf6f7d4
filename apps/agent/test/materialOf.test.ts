/**
 * A source's check (`materialOf`) gives the same answer whether the deploy's
 * codec inspects the material (a deploy is likely) or the agent searches the
 * leaf itself (`leafForKey`): same leaf, chain, facts, or the same problems.
 * A codec whose inspection crashes leaves the agent's own search in charge.
 */
import { execFileSync } from "node:child_process"
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
          /^key \S*enc\.key: the private key is encrypted, and the agent reads PEM keys without a passphrase; fix: decrypt it .* pfx_password_env$/,
        ),
      ],
    })
    expect(JSON.stringify(got)).not.toContain(String(encrypted).split("\n")[2])
  })

  it("a PFX password with a line break after it (echo into an env file): the wrong password, with why it may be; a password that has spaces of its own opens it", async () => {
    const cert = file("pw.crt", leaf.certPem)
    const key = file("pw.key", leaf.keyPem)
    const pfxOf = (name: string, password: string) => {
      const out = join(dir, name)
      execFileSync(
        "openssl",
        ["pkcs12", "-export", "-in", cert, "-inkey", key, "-out", out, "-passout", "env:PW"],
        {
          env: { ...process.env, PW: password },
        },
      )
      return out
    }
    const check = async (pfx: string, password: string) => {
      const source: Source = { _tag: "Pfx", pfx, passwordEnv: "PFX_PW" }
      const bytes = await Effect.runPromise(readSource(source))
      const result = await Effect.runPromise(Effect.result(materialOf(source, bytes, { PFX_PW: password })))
      return result._tag === "Failure" ? result.failure.problems : []
    }
    const plain = pfxOf("pw.pfx", "correct horse")
    const padded = await check(plain, "correct horse\n")
    expect(padded).toEqual([
      expect.stringMatching(
        /the password in PFX_PW does not open it \(or the file is incomplete\); the variable's value has spaces or a line break around it, which are part of the password as given: set it without them if they are not$/,
      ),
    ])
    expect(JSON.stringify(padded)).not.toContain("correct horse")
    expect(await check(plain, "not it")).toEqual([
      expect.stringMatching(/does not open it \(or the file is incomplete\)$/),
    ])
    expect(await check(pfxOf("spaced.pfx", " spaced "), " spaced ")).toEqual([])
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
    // Named with its file, as every other problem of a source.
    expect(plain).toEqual({
      problems: [expect.stringMatching(/^key \S*damaged\.key: the private key is damaged: /)],
    })
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
        `key ${join(dir, "other.key")}: the private key matches none of the certificates of cert ${join(dir, "mismatch.crt")} (mismatched key, or a renewal half-written: certificate and key from different issues)`,
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
    // The extra key is the one outside the key file, whichever file is read first: the message
    // named the key file, which holds the key it should.
    const expected = {
      problems: [
        `cert ${source.cert}: holds a private key, and so does key ${source.key}; fix: give exactly one private key, the leaf's: remove it from the cert file`,
      ],
    }
    expect(await answer(source)).toEqual(expected)
    expect(await answer(source, codec)).toEqual(expected)
    // The same key twice is two keys too.
    const twice: Source = { ...source, key: file("same.key", leaf.keyPem) }
    expect(await answer(twice)).toEqual({
      problems: [
        `cert ${twice.cert}: holds a private key, and so does key ${twice.key}; fix: give exactly one private key, the leaf's: remove it from the cert file`,
      ],
    })
    // A key in the chain file, read before the key file: the chain file is named, not the key file.
    const inChain: Source = {
      _tag: "Pem",
      cert: file("leaf.crt", leaf.certPem),
      chain: file("chain-with-key.crt", other.keyPem),
      key: file("leaf.key", leaf.keyPem),
    }
    expect(await answer(inChain)).toEqual({
      problems: [
        `chain ${inChain.chain}: holds a private key, and so does key ${inChain.key}; fix: give exactly one private key, the leaf's: remove it from the chain file`,
      ],
    })
    // No key file: the second file with a key is the extra one, and the first is named beside it.
    const noKeyFile: Source = {
      _tag: "Pem",
      cert: file("leaf-and-key.crt", `${leaf.certPem}${leaf.keyPem}`),
      chain: inChain.chain,
      key: undefined,
    }
    expect(await answer(noKeyFile)).toEqual({
      problems: [
        `chain ${inChain.chain}: holds a second private key, besides the one in cert ${noKeyFile.cert}; fix: give exactly one private key, the leaf's`,
      ],
    })
  })

  it("names the block a parser problem is in, with the parser's own fix", async () => {
    // A full chain cut inside its second certificate (read while it was being written).
    const cut = leaf.certPem + leaf.certPem.slice(0, 120)
    const source: Source = {
      _tag: "Pem",
      cert: file("cut.crt", cut),
      chain: undefined,
      key: file("k.key", leaf.keyPem),
    }
    expect(await answer(source)).toEqual({
      problems: [
        `cert ${source.cert}: block 2 (CERTIFICATE) is cut short: it has no -----END line (the file may still be being written); fix: supply the complete file (write it to a temporary name and rename it into place)`,
      ],
    })
  })
})
