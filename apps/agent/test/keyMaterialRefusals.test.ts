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
import { describe, expect, it } from "vitest"
import { agent, inScratch, opensslIn } from "./checkFixtures.js"

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

const ENCRYPTED = {
  message: "the private key is encrypted, and the agent reads PEM keys without a passphrase",
  fix: "decrypt it to a file only the agent can read (openssl pkey -in key.pem -out key-plain.pem; add -provider legacy -provider default to read a legacy cipher), or give the certificate as a PFX with pfx_password_env",
}

describe("key material the agent refuses, in --check --json", () => {
  it("encrypted PEM keys (PBES1, scrypt over the limit, DES-EDE3), a two-key PFX, stray PEM lines past the cap, an RSA key with a wrong d: each named with its fix, no key printed (exit 2)", () => {
    inScratch((dir) => {
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
      openssl(["rsa", "-des3", "-traditional", "-in", "leaf.key", "-out", "des3.key", "-passout", "pass:pw"])
      const leafKey = readFileSync(join(dir, "leaf.key"), "utf8")
      writeFileSync(join(dir, "wrong-d.key"), withWrongD(leafKey))
      for (const alias of ["a", "b"]) {
        const made = spawnSync("keytool", [
          "-genkeypair",
          "-keystore",
          join(dir, "two.p12"),
          "-storetype",
          "PKCS12",
          "-storepass",
          "pwpwpw",
          "-alias",
          alias,
          "-keyalg",
          "EC",
          "-groupname",
          "secp256r1",
          "-dname",
          `CN=${alias}.example.test`,
          "-validity",
          "30",
        ])
        if (made.status !== 0) throw new Error(`keytool: ${made.stderr}`)
      }
      // The certificate ends on line 19; a damaged BEGIN line (20), its END line (21), then 21 leftovers.
      writeFileSync(
        join(dir, "stray.crt"),
        `${readFileSync(join(dir, "leaf.crt"), "utf8")}-----Begin Certificate-----\n${"-----END CERTIFICATE-----\n".repeat(22)}`,
      )
      const keyFiles = ["leaf.key", "pbes1.key", "scrypt.key", "des3.key", "wrong-d.key"]
      for (const f of [...keyFiles, "two.p12"]) chmodSync(join(dir, f), 0o600)
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
          message: `pfx ${at("two.p12")}: the PFX holds 2 private keys (that of "CN=a.example.test"; that of "CN=b.example.test"); kvdeploy takes one, the leaf's, and does not guess which`,
          fix: "export the PFX with the leaf's private key alone (openssl pkcs12 -export -inkey leaf-key.pem -in leaf.pem -certfile chain.pem; from a Java keystore of several entries, keytool -importkeystore -srcalias ALIAS -destkeystore leaf.p12 -deststoretype PKCS12 takes one)",
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
      expect(problems).toHaveLength(1 + 1 + 1 + 1 + 21 + 1)
      const printed = r.stdout + r.stderr
      expect(printed).not.toContain("pwpwpw")
      for (const f of keyFiles)
        for (const line of readFileSync(at(f), "utf8").split("\n"))
          if (line.length >= 16 && !line.startsWith("-----")) expect(printed).not.toContain(line)
    })
  })
})
