/** The last guard on error output: PEM text that reached a message is never printed. */
import { generateKeyPairSync } from "node:crypto"
import { holdsEncodedBase64 } from "@kvdeploy/core"
import { describe, expect, it } from "vitest"
import { pemArgumentProblems, withoutPem } from "../src/cli/problems.js"

const block =
  "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----"

describe("withoutPem", () => {
  it("replaces whole blocks, blocks cut short and several blocks, and keeps the text around them", () => {
    expect(withoutPem(`Unrecognized flag: ${block}\nMissing value`)).toBe(
      "Unrecognized flag: [PEM text, not shown]\nMissing value",
    )
    expect(withoutPem(`value ${block.slice(0, 60)}`)).toBe("value [PEM text, not shown]")
    const two = withoutPem(`${block} and ${block.replace(/PRIVATE KEY/g, "CERTIFICATE")}`)
    expect(two).toBe("[PEM text, not shown] and [PEM text, not shown]")
    expect(two).not.toContain("MIGHAgEA")
    expect(withoutPem("--key: /etc/ssl/key.pem: no such file")).toBe("--key: /etc/ssl/key.pem: no such file")
    // A message that only names the markers is left whole.
    const advice =
      "supply PEM (-----BEGIN CERTIFICATE----- / -----BEGIN PRIVATE KEY-----) or a single DER certificate"
    expect(withoutPem(advice)).toBe(advice)
    // Escaped line breaks (a PEM inside JSON text), short base64 lines, a header name with digits.
    expect(
      withoutPem(
        `"-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIIrYSSNQ\\nFaA2Hwf1\\n-----END EC PRIVATE KEY-----"`,
      ),
    ).toBe('"[PEM text, not shown]"')
    expect(withoutPem("-----BEGIN CERTIFICATE-----\nMIIB\nAbCd\nEfGh\nIjKl\n-----END CERTIFICATE-----")).toBe(
      "[PEM text, not shown]",
    )
    expect(withoutPem("-----BEGIN X-----\nX-Header1: v\n\nMHcCAQEEIIrYSSNQFaA2\n")).toBe(
      "[PEM text, not shown]",
    )
    // A marker followed by a long run of escaped line breaks and no base64 is left as it is (an
    // unbounded gap in the pattern made this quadratic: minutes for these 400 KB).
    const run = `-----BEGIN A-----${"\\n".repeat(200_000)}!`
    expect(withoutPem(run)).toBe(run)
    // A legacy encrypted key's headers come before its base64.
    expect(
      withoutPem(
        "x -----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00FF\n\nMHcCAQEEIIrYSSNQFaA2Hwf1\n",
      ),
    ).toBe("x [PEM text, not shown]")
  })
})

describe("pemArgumentProblems", () => {
  it("names the flag a pasted PEM belongs to (separate or inline value), or its position, and never quotes it", () => {
    const problems = pemArgumentProblems(["deploy", "--key", block, `--cert=${block}`, "-n", block, block])
    expect(problems.map((p) => p.field)).toEqual(["--key", "--cert", "-n", "argument 7"])
    // A material flag's fix is a file or standard input; a path argument's (which takes no -) a file's
    // path; another flag's (a name, an id) is its own value.
    expect(problems.map((p) => /put it in a file .*give - and pipe it/.test(p.fix))).toEqual([
      true,
      true,
      false,
      false,
    ])
    expect(problems[3]?.fix).toMatch(/^give a file's path here/)
    expect(pemArgumentProblems(["show", "--config", block])[0]?.fix).toMatch(/^give a file's path here/)
    // A line break alone is pasted text where a path goes, not in a value (its own check names it).
    expect(pemArgumentProblems(["plan", "--tag", "note=a\nb"])).toEqual([])
    expect(pemArgumentProblems(["plan", "--config", "a\nb"]).map((p) => p.field)).toEqual(["--config"])
    expect(pemArgumentProblems(["deploy", "--certificate-id", block])[0]?.fix).toMatch(
      /^give the flag its own value \(a name, an id, KEY=VALUE\), not certificate or key text/,
    )
    for (const p of problems) expect(`${p.field} ${p.message} ${p.fix}`).not.toContain("MIGHAgEA")
    expect(pemArgumentProblems(["deploy", "--key", "leaf.key", "--name", "api"])).toEqual([])
    // A key's base64 body without its PEM lines is caught too; a long name of letters alone is not.
    // Base64 that reads as encoded bytes but not as a whole key (a key cut short or altered) is
    // refused too; names, hashes in hex and hyphenated values are left alone.
    const cut = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ format: "der", type: "pkcs8" })
      .toString("base64")
      .slice(0, 100)
    expect(pemArgumentProblems(["deploy", `--key=${cut}`]).map((p) => p.field)).toEqual(["--key"])
    expect(
      pemArgumentProblems([
        "deploy",
        "--name",
        "a".repeat(127),
        "--tag",
        `commit=${"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"}`,
        "--tag",
        "owner=team-payments-westeurope-ProductionGateway2024",
        // Names and paths an earlier rule refused: CamelCase with digits, a path not written yet.
        "--name",
        "WwwContosoCom2024Q3WildcardSanCert01Eu2Prod",
        "--cert",
        "/srv/Certs2024/WebApp1/Prod02/Api3V2/tls.crt",
      ]),
    ).toEqual([])
    // The base64 of any key OpenSSL reads (here a SEC1 EC key, as cert-manager writes them) or of a certificate.
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" })
    for (const type of ["sec1", "pkcs8"] as const) {
      const der = privateKey.export({ type, format: "der" }).toString("base64")
      expect(
        pemArgumentProblems(["deploy", "--key", der]).map((p) => p.field),
        type,
      ).toEqual(["--key"])
    }
    // Long paths and names of letters and digits are not key text (a DER body starts with MI).
    const longPath =
      "Certs2025/WebServer1/Production/Frontends/East/Gateway/Listener443/Chain/Leaf2025Cert/Current"
    expect(
      pemArgumentProblems(["deploy", "--cert", `${longPath}Extra1`, "--name", `A1${"b".repeat(118)}`]),
    ).toEqual([])
    // The path of a file to write need not exist, and a long path of short words with digits can read
    // like base64 from inside a key: path flags are not judged by that rule (a review found these refused).
    for (const path of [
      "/mnt/c/Users/JSmith/AppData/Local/Kvdeploy/State/Prod2024/WebApp01/Metrics/kv.prom",
      "/data/ProdEU2/WebApp1/TLS/Kv2/State/Node3/Metrics2024/Run01/Out7/kv.prom",
    ]) {
      expect(holdsEncodedBase64(path), path).toBe(true)
      for (const flag of ["--metrics-file", "--write-env", "--write-config", "--state-dir"])
        expect(pemArgumentProblems(["deploy", flag, path]), `${flag} ${path}`).toEqual([])
    }
    // A digest as a tag is refused as key text, with the way to give it.
    const sri = pemArgumentProblems([
      "deploy",
      "--tag",
      "sri=sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC",
    ])
    expect(sri.map((p) => p.field)).toEqual(["--tag"])
    expect(sri[0]?.fix).toContain("a digest or an id of 64 or more base64 characters: in hex")
  })
})
