/**
 * The material refusals of @kvdeploy/pkcs12 as the BUILT agent's `--check --json` reports them (it
 * reads every source as a deploy would, and calls no vault): a PEM key encrypted under a PKCS#5 v1
 * cipher, under a scrypt cost over the limit, or as a traditional DES-EDE3 PEM (the agent reads PEM
 * keys without a passphrase, so re-encrypting one is no fix for it), a PFX holding two private keys
 * (Java keytool's keystore of two entries), a certificate file of stray BEGIN/END lines past the 20
 * problems listed, and an RSA key whose private exponent d alone is wrong (it still signs). Each
 * problem names its deployment's source, the file, what is wrong and the openssl or keytool command
 * that fixes it, and no line of any key is printed. The material is made by openssl, keytool and
 * node:crypto in a scratch directory, removed after.
 */
import { spawnSync } from "node:child_process"
import { createPrivateKey } from "node:crypto"
import { chmodSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { keytoolStoreOfTwoKeys, scryptKeyOverOpensslMemory } from "@kvdeploy/pkcs12/testing"
import { describe, expect, it } from "vitest"
import { agent, inScratch, opensslIn } from "./checkFixtures.js"
import { agentSuite, baseEnv, startAgent, writeConfig } from "./harness.js"

/** `keyPem` (RSA) with its private exponent d changed, every other number kept: node:crypto's JWK in and out. */
const withWrongD = (keyPem: string): string => {
  const jwk = createPrivateKey(keyPem).export({ format: "jwk" }) as Record<string, string>
  let hex = (BigInt(`0x${Buffer.from(jwk.d ?? "", "base64url").toString("hex")}`) ^ 0x10n).toString(16)
  if (hex.length % 2 === 1) hex = `0${hex}`
  return String(
    createPrivateKey({
      key: { ...jwk, d: Buffer.from(hex, "hex").toString("base64url") },
      format: "jwk",
    }).export({
      type: "pkcs8",
      format: "pem",
    }),
  )
}

/** The key files `makeMaterial` writes (none of their lines may be printed or logged). */
const KEY_FILES = [
  "leaf.key",
  "pbes1.key",
  "scrypt.key",
  "scrypt-mem.key",
  "des3.key",
  "wrong-d.key",
  "two-keys.pem",
]

/**
 * In `dir`: leaf.crt (RSA 2048, self-signed) and leaf.key; the key encrypted under PBE-MD5-DES
 * (pbes1.key), under scrypt N*r*p 2,097,152 (scrypt.key) and as a traditional DES-EDE3 PEM
 * (des3.key), passphrase "pw"; the key with a wrong d (wrong-d.key); a keytool keystore of two key
 * entries (two.p12, password "pwpwpw"); the certificate followed by stray marker lines (stray.crt).
 */
const makeMaterial = (dir: string): void => {
  const openssl = opensslIn(dir)
  openssl(
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.crt"].concat([
      "-subj",
      "/CN=app.example.test",
      "-days",
      "30",
    ]),
  )
  const reencrypt = (out: string, options: ReadonlyArray<string>) =>
    openssl(["pkcs8", "-topk8", "-in", "leaf.key", "-out", out, "-passout", "pass:pw", ...options])
  reencrypt("pbes1.key", ["-v1", "PBE-MD5-DES", "-provider", "legacy", "-provider", "default"])
  // N*r*p = 2,097,152: twice the limit.
  reencrypt("scrypt.key", ["-scrypt", "-scrypt_N", "16384", "-scrypt_r", "8", "-scrypt_p", "16"])
  // The same with r 32: more scrypt memory than OpenSSL allows, so no openssl command can decrypt it.
  writeFileSync(
    join(dir, "scrypt-mem.key"),
    scryptKeyOverOpensslMemory(readFileSync(join(dir, "scrypt.key"), "utf8")),
  )
  openssl(["rsa", "-des3", "-traditional", "-in", "leaf.key", "-out", "des3.key", "-passout", "pass:pw"])
  const leafKey = readFileSync(join(dir, "leaf.key"), "utf8")
  writeFileSync(join(dir, "wrong-d.key"), withWrongD(leafKey))
  keytoolStoreOfTwoKeys(join(dir, "two.p12"), "pwpwpw")
  // Its two keys as PEM (two-keys.pem), only for the checks that no line of them is printed or logged.
  openssl([
    "pkcs12",
    "-in",
    "two.p12",
    "-nocerts",
    "-nodes",
    "-passin",
    "pass:pwpwpw",
    "-out",
    "two-keys.pem",
  ])
  // The certificate ends on line 19; a damaged BEGIN line (20), its END line (21), then 21 leftovers.
  writeFileSync(
    join(dir, "stray.crt"),
    `${readFileSync(join(dir, "leaf.crt"), "utf8")}-----Begin Certificate-----\n${"-----END CERTIFICATE-----\n".repeat(22)}`,
  )
  // A single certificate whose BEGIN line has en dashes for hyphens (a copy from a web page).
  writeFileSync(
    join(dir, "en-dash.crt"),
    readFileSync(join(dir, "leaf.crt"), "utf8").replace(
      "-----BEGIN CERTIFICATE-----",
      "\u2013\u2013\u2013\u2013\u2013BEGIN CERTIFICATE\u2013\u2013\u2013\u2013\u2013",
    ),
  )
  for (const f of [...KEY_FILES, "two.p12"]) chmodSync(join(dir, f), 0o600)
}

const ENCRYPTED = {
  message: "the private key is encrypted, and the agent reads PEM keys without a passphrase",
  fix: "decrypt it to a file only the agent can read (openssl pkey -in key.pem -out key-plain.pem; add -provider legacy -provider default to read a legacy cipher), or give the certificate as a PFX with pfx_password_env",
}

describe("key material the agent refuses, in --check --json", () => {
  it("encrypted PEM keys (PBES1, scrypt over the limit, DES-EDE3), a two-key PFX, stray PEM lines past the cap, an RSA key with a wrong d: each named with its fix, no key printed (exit 2)", () => {
    inScratch((dir) => {
      makeMaterial(dir)
      const keyFiles = KEY_FILES
      const at = (f: string) => join(dir, f)
      const target = (n: string) => `{ vault_url: "https://kv-prod.vault.azure.net", certificate_name: ${n} }`
      const pem = (name: string, cert: string, key: string) =>
        `  - { name: ${name}, source: { cert: ${at(cert)}, key: ${at(key)} }, target: ${target(name)} }`
      const config = at("material.yaml")
      writeFileSync(
        config,
        [
          `agent: { state_dir: ${at("state")} }`,
          "deployments:",
          pem("pbes1", "leaf.crt", "pbes1.key"),
          pem("scrypt", "leaf.crt", "scrypt.key"),
          pem("des3", "leaf.crt", "des3.key"),
          `  - { name: twokeys, source: { pfx: ${at("two.p12")}, pfx_password_env: TWO_PASS }, target: ${target("twokeys")} }`,
          pem("stray", "stray.crt", "leaf.key"),
          pem("wrongd", "leaf.crt", "wrong-d.key"),
          pem("scryptmem", "leaf.crt", "scrypt-mem.key"),
          pem("endash", "en-dash.crt", "leaf.key"),
          "",
        ].join("\n"),
      )
      const r = agent(["--config", config, "--check", "--json"], { TWO_PASS: "pwpwpw" })
      expect(r.status, r.stdout + r.stderr).toBe(2)
      const problems = (
        JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string; fix: string }> }
      ).problems
      const of = (i: number) => problems.filter((p) => p.field === `deployments[${i}].source`)
      expect(of(0)).toEqual([
        {
          field: "deployments[0].source",
          message: `key ${at("pbes1.key")}: ${ENCRYPTED.message}`,
          fix: ENCRYPTED.fix,
        },
      ])
      // Its cost is named, and the fix is the agent's: a key re-encrypted at a lower cost is still encrypted.
      expect(of(1)).toEqual([
        {
          field: "deployments[1].source",
          message: `key ${at("scrypt.key")}: the private key is encrypted (the scrypt cost N*r*p (N 16384, r 8, p 16) exceeds the limit of 1048576), and the agent reads PEM keys without a passphrase`,
          fix: ENCRYPTED.fix,
        },
      ])
      // Over OpenSSL's scrypt memory too: not "openssl pkey", which cannot decrypt it either.
      expect(of(6)).toEqual([
        {
          field: "deployments[6].source",
          message: `key ${at("scrypt-mem.key")}: the private key is encrypted, and refused before decrypting it: the scrypt cost N*r*p (N 16384, r 32, p 16) exceeds the limit of 1048576, and the agent reads PEM keys without a passphrase`,
          fix: "OpenSSL cannot decrypt it either (its scrypt memory limit): decrypt it with the tool that encrypted it to a file only the agent can read, or give the certificate as a PFX with pfx_password_env",
        },
      ])
      expect(of(2)).toEqual([
        {
          field: "deployments[2].source",
          message: `key ${at("des3.key")}: ${ENCRYPTED.message}`,
          fix: ENCRYPTED.fix,
        },
      ])
      expect(of(3)).toEqual([
        {
          field: "deployments[3].source",
          message: expect.stringMatching(
            new RegExp(
              `^pfx ${at("two.p12").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: the PFX holds 2 private keys \\(the entry "a": that of "CN=a\\.example\\.test", serial [0-9a-f]+, notAfter \\S+Z; the entry "b": that of "CN=b\\.example\\.test", serial [0-9a-f]+, notAfter \\S+Z\\); kvdeploy takes one, the leaf's, and does not guess which$`,
            ),
          ),
          fix: 'export the PFX with the leaf\'s private key alone (openssl pkcs12 -export -inkey leaf-key.pem -in leaf.pem -certfile chain.pem; from a Java keystore of several entries, keytool -importkeystore -srcalias ALIAS -destkeystore leaf.p12 -deststoretype PKCS12 takes one; the aliases in this file are "a", "b", and keytool -list -v names each entry\'s certificate)',
        },
      ])
      const leftover = (line: number) => ({
        field: "deployments[4].source",
        message: `cert ${at("stray.crt")}: line ${line} "-----END CERTIFICATE-----" is an END line without its BEGIN line (the BEGIN line is missing or damaged), so its block is not read`,
        fix: "repair the block's -----BEGIN LABEL----- line, or remove the leftover END line",
      })
      expect(of(4)).toEqual([
        {
          field: "deployments[4].source",
          message: `cert ${at("stray.crt")}: line 20 "-----Begin Certificate-----" is a damaged BEGIN line (a PEM line is five ASCII hyphens, BEGIN, a space, an upper-case label and five hyphens: -----BEGIN LABEL-----), so its block is not read`,
          fix: "repair the line, or take the file again from its source (an editor or a copy from a web page may have changed its hyphens)",
        },
        ...Array.from({ length: 19 }, (_, i) => leftover(22 + i)),
        {
          field: "deployments[4].source",
          message: `cert ${at("stray.crt")}: has 2 more problems, not listed`,
          fix: "fix the ones listed; the input is probably not the right file",
        },
      ])
      // OpenSSL signs well with this key (its CRT numbers are right): the wrong number is named.
      expect(of(5)).toEqual([
        {
          field: "deployments[5].source",
          message: `key ${at("wrong-d.key")}: the private key is damaged: its public half is the certificate's, but its private exponent (d) does not invert its public exponent, so \`openssl pkey -check\` calls it invalid and other readers of the PFX (Python's cryptography) refuse it`,
          fix: "re-export the key from where it was made, or supply the key the certificate was issued for (`openssl pkey -check -noout -in KEY` checks a key file)",
        },
      ])
      // Read from the file's bytes, the damaged line is named, not "neither PEM text nor DER".
      expect(of(7)).toEqual([
        {
          field: "deployments[7].source",
          message: `cert ${at("en-dash.crt")}: line 1 "\u2013\u2013\u2013\u2013\u2013BEGIN CERTIFICATE\u2013\u2013\u2013\u2013\u2013" is a damaged BEGIN line (a PEM line is five ASCII hyphens, BEGIN, a space, an upper-case label and five hyphens: -----BEGIN LABEL-----), so its block is not read`,
          fix: "repair the line, or take the file again from its source (an editor or a copy from a web page may have changed its hyphens)",
        },
      ])
      expect(problems).toHaveLength(1 + 1 + 1 + 1 + 21 + 1 + 1 + 1)
      const printed = r.stdout + r.stderr
      expect(printed).not.toContain("pwpwpw")
      for (const f of keyFiles)
        for (const line of readFileSync(at(f), "utf8").split("\n"))
          if (line.length >= 16 && !line.startsWith("-----")) expect(printed).not.toContain(line)
    })
  })
})

/**
 * In `dir`, as an issuer and the operator's tools leave them (interop-37): a root, an intermediate
 * (int.crt) and an unrelated CA (other.crt); web.crt (EC P-256, key web.key) and an older
 * certificate of the same key (web-old.crt); int-other.crt, the intermediate then the unrelated CA;
 * two.crt, the old and the new certificate concatenated; ks.p12 (password "changeit"), openssl's
 * export of web as the key entry "web" into which keytool imported the unrelated CA as the
 * trusted entry "clientca"; ed.crt and ed.key, an Ed25519 leaf the intermediate issued; quoted.crt,
 * web.crt as `jq .cert` writes it without -r.
 */
const makeInteropMaterial = (dir: string): void => {
  const openssl = opensslIn(dir)
  const ca = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"]
  const selfSignedCa = (name: string, cn: string) =>
    openssl(
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "30",
      ].concat([
        "-subj",
        `/CN=${cn}`,
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.crt`,
        ...ca.flatMap((e) => ["-addext", e]),
      ]),
    )
  selfSignedCa("root", "Test Root")
  selfSignedCa("other", "Unrelated CA")
  writeFileSync(join(dir, "ca.ext"), `${ca.join("\n")}\n`)
  const request = (name: string, cn: string, keyOptions: ReadonlyArray<string>) =>
    openssl(["req", "-new", "-nodes", ...keyOptions, "-subj", `/CN=${cn}`, "-out", `${name}.csr`])
  const sign = (csr: string, out: string, issuer: string, days: number, extfile?: string) =>
    openssl(
      ["x509", "-req", "-in", `${csr}.csr`, "-CA", `${issuer}.crt`, "-CAkey", `${issuer}.key`].concat([
        "-days",
        String(days),
        "-out",
        out,
        ...(extfile === undefined ? [] : ["-extfile", extfile]),
      ]),
    )
  request("int", "Test R11", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", "int.key"])
  sign("int", "int.crt", "root", 30, "ca.ext")
  request("web", "web.example.test", [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-keyout",
    "web.key",
  ])
  sign("web", "web-old.crt", "int", 10)
  sign("web", "web.crt", "int", 30)
  const read = (f: string) => readFileSync(join(dir, f), "utf8")
  writeFileSync(join(dir, "int-other.crt"), read("int.crt") + read("other.crt"))
  writeFileSync(join(dir, "two.crt"), read("web-old.crt") + read("web.crt"))
  openssl(["genpkey", "-algorithm", "ED25519", "-out", "ed.key"])
  request("ed", "ed.example.test", ["-key", "ed.key"])
  sign("ed", "ed.crt", "int", 30)
  writeFileSync(join(dir, "quoted.crt"), `${JSON.stringify(read("web.crt"))}\n`)
  openssl(
    ["pkcs12", "-export", "-name", "web", "-inkey", "web.key", "-in", "web.crt"].concat([
      "-certfile",
      "int.crt",
      "-passout",
      "pass:changeit",
      "-out",
      "ks.p12",
    ]),
  )
  const imported = spawnSync("keytool", [
    "-importcert",
    "-noprompt",
    "-alias",
    "clientca",
    "-file",
    join(dir, "other.crt"),
    "-storetype",
    "PKCS12",
    "-keystore",
    join(dir, "ks.p12"),
    "-storepass",
    "changeit",
  ])
  if (imported.status !== 0) throw new Error(`keytool -importcert: ${imported.stderr}`)
  for (const f of ["root.key", "other.key", "int.key", "web.key", "ed.key", "ks.p12"])
    chmodSync(join(dir, f), 0o600)
}

describe("material from the field the agent refuses, in --check --json (interop-37)", () => {
  it("an unrelated CA beside the chain, a keytool trusted entry, two certificates for one key, an Ed25519 leaf, a JSON-quoted PEM: each said with its own fix, no false 'chain is broken' (exit 2)", () => {
    inScratch((dir) => {
      makeInteropMaterial(dir)
      const at = (f: string) => join(dir, f)
      const target = (n: string) => `{ vault_url: "https://kv-prod.vault.azure.net", certificate_name: ${n} }`
      const config = at("interop.yaml")
      writeFileSync(
        config,
        [
          `agent: { state_dir: ${at("state")} }`,
          "deployments:",
          `  - { name: unrelated, source: { cert: ${at("web.crt")}, chain: ${at("int-other.crt")}, key: ${at("web.key")} }, target: ${target("unrelated")} }`,
          `  - { name: trusted, source: { pfx: ${at("ks.p12")}, pfx_password_env: KS_PASS }, target: ${target("trusted")} }`,
          `  - { name: twoleaves, source: { cert: ${at("two.crt")}, chain: ${at("int.crt")}, key: ${at("web.key")} }, target: ${target("twoleaves")} }`,
          `  - { name: ed, source: { cert: ${at("ed.crt")}, chain: ${at("int.crt")}, key: ${at("ed.key")} }, target: ${target("ed")} }`,
          `  - { name: quoted, source: { cert: ${at("quoted.crt")}, chain: ${at("int.crt")}, key: ${at("web.key")} }, target: ${target("quoted")} }`,
          "",
        ].join("\n"),
      )
      const r = agent(["--config", config, "--check", "--json"], { KS_PASS: "changeit" })
      expect(r.status, r.stdout + r.stderr).toBe(2)
      const problems = (
        JSON.parse(r.stdout) as { problems: Array<{ field: string; message: string; fix: string }> }
      ).problems
      const of = (i: number) => problems.filter((p) => p.field === `deployments[${i}].source`)
      expect(JSON.stringify(problems)).not.toMatch(/is broken after|above the gap/)
      expect(of(0)).toEqual([
        {
          field: "deployments[0].source",
          // No gap is said: the file does not tell this CA from one above a missing intermediate, so
          // its own problem names the issuer the path stops at (review 37bc).
          message: `chain[1]: ("CN=Unrelated CA") is not part of the leaf's chain: the path stops at "CN=Test R11", whose issuer "CN=Test Root" is not given; if "CN=Unrelated CA" is above it, add "CN=Test Root" (a deploy is refused)`,
          fix: expect.stringMatching(
            /^remove it; or, if it is above "CN=Test Root", add the certificate of "CN=Test Root" \(and any between them\) to the chain/,
          ),
        },
      ])
      expect(of(1)).toEqual([
        {
          field: "deployments[1].source",
          message: `pfx ${at("ks.p12")}: the PFX holds the trusted-certificate entry "clientca" ("CN=Unrelated CA"), a certificate that is not in the chain of the key entry "web"; kvdeploy neither deploys it in the chain nor drops it unsaid`,
          fix: "delete the entry from a copy of the keystore (keytool -delete -alias clientca -keystore FILE), or export the key entry alone (keytool -importkeystore -srcalias web -srckeystore FILE -destkeystore leaf.p12 -deststoretype PKCS12)",
        },
      ])
      const serialAndNotAfter = (f: string) => {
        const x = spawnSync("openssl", ["x509", "-in", at(f), "-noout", "-serial", "-enddate"], {
          encoding: "utf8",
        })
        const serial = (/serial=([0-9A-F]+)/.exec(x.stdout)?.[1] ?? "")
          .toLowerCase()
          .replace(/^(00)+(?=..)/, "")
        const notAfter = new Date(/notAfter=(.+)/.exec(x.stdout)?.[1] ?? "").toISOString()
        return { serial, notAfter }
      }
      const [old, renewed] = [serialAndNotAfter("web-old.crt"), serialAndNotAfter("web.crt")]
      expect(of(2)).toEqual([
        {
          field: "deployments[2].source",
          message: expect.stringMatching(
            /^leaf: is one of two certificates given for this key: .*; kvdeploy deploys one and does not guess which \(a deploy is refused\)$/,
          ),
          fix: expect.stringContaining(
            `give only the one to deploy (the newest is serial ${renewed.serial}, notAfter ${renewed.notAfter})`,
          ),
        },
      ])
      for (const c of [old, renewed])
        expect(of(2)[0]?.message).toContain(`serial ${c.serial}, notAfter ${c.notAfter}`)
      expect(of(3)).toEqual([
        {
          field: "deployments[3].source",
          message: expect.stringMatching(/Ed25519 key, which Key Vault does not accept/),
          fix: expect.stringMatching(/generate a new RSA or EC key and have the certificate issued again/),
        },
      ])
      expect(of(4)).toEqual([
        {
          field: "deployments[4].source",
          message: `cert ${at("quoted.crt")}: block 1 (CERTIFICATE) holds literal \\n sequences (a backslash and an n) instead of line breaks: the PEM text was JSON-quoted`,
          fix: "write it with jq -r (raw output), or decode the JSON string, so that the file holds real line breaks",
        },
      ])
      const printed = r.stdout + r.stderr
      for (const f of ["web.key", "ed.key"])
        for (const line of readFileSync(at(f), "utf8").split("\n"))
          if (line.length >= 16 && !line.startsWith("-----")) expect(printed).not.toContain(line)
    })
  })
})

const VAULT = "agent-key-refusals"
const suite = agentSuite([VAULT])

describe("key material the running agent refuses", () => {
  it("a scrypt key over the limit, a two-key PFX, an RSA key with a wrong d, stray PEM lines: each a source broken line with its fix, nothing written to the vault, no key logged", async () => {
    const { emulator, work } = suite
    makeMaterial(work.dir)
    const pem = (name: string, cert: string, key: string) => ({
      name,
      vault: VAULT,
      certificate: `${name}-cert`,
      source: { cert: work.path(cert), key: work.path(key) },
    })
    const config = writeConfig(work, emulator, [
      pem("scrypt", "leaf.crt", "scrypt.key"),
      {
        name: "twokeys",
        vault: VAULT,
        certificate: "twokeys-cert",
        source: { pfx: work.path("two.p12"), pfx_password_env: "TWO_PASS" },
      },
      pem("wrongd", "leaf.crt", "wrong-d.key"),
      pem("stray", "stray.crt", "leaf.key"),
    ])
    const mark = emulator.requests.mark()
    const a = startAgent(config, { ...baseEnv(), ...emulator.env.clientSecret, TWO_PASS: "pwpwpw" })
    suite.agent = a
    const brokenLine = async (name: string) =>
      JSON.stringify(await a.waitFor((l) => l.deployment === name && /^source broken/.test(l.msg)))
    const said = {
      scrypt: await brokenLine("scrypt"),
      twokeys: await brokenLine("twokeys"),
      wrongd: await brokenLine("wrongd"),
      stray: await brokenLine("stray"),
    }
    expect(said.scrypt).toContain(
      "the private key is encrypted (the scrypt cost N*r*p (N 16384, r 8, p 16) exceeds the limit of 1048576), and the agent reads PEM keys without a passphrase; fix: decrypt it to a file only the agent can read (openssl pkey -in key.pem -out key-plain.pem",
    )
    expect(said.scrypt).not.toContain("re-encrypt")
    expect(said.twokeys).toContain("the PFX holds 2 private keys")
    expect(said.twokeys).toContain("keytool -importkeystore -srcalias ALIAS")
    expect(said.wrongd).toContain("its private exponent (d) does not invert its public exponent")
    expect(said.stray).toContain("is a damaged BEGIN line")
    expect(said.stray).toContain("has 2 more problems, not listed")
    const writes = emulator.requests
      .entries({ since: mark, vault: VAULT })
      .filter((e) => e.method !== "GET" && !e.challenge)
    expect(writes).toEqual([])
    const logged = a.lines.map((l) => JSON.stringify(l)).join("\n") + a.stderr()
    expect(logged).not.toContain("pwpwpw")
    for (const f of KEY_FILES)
      for (const line of readFileSync(work.path(f), "utf8").split("\n"))
        if (line.length >= 16 && !line.startsWith("-----")) expect(logged).not.toContain(line)
  }, 60_000)
})
