/** The last guard on error output: PEM text that reached a message is never printed. */
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
    for (const p of problems) expect(`${p.field} ${p.message} ${p.fix}`).not.toContain("MIGHAgEA")
    expect(pemArgumentProblems(["deploy", "--key", "leaf.key", "--name", "api"])).toEqual([])
    // A key's base64 body without its PEM lines is caught too; a long name of letters alone is not.
    const body =
      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSyntheticBodyNotAKey0123456789abcdefGHIJKLmnopQRSTuv"
    expect(pemArgumentProblems(["deploy", `--key=${body}`]).map((p) => p.field)).toEqual(["--key"])
    expect(
      pemArgumentProblems(["deploy", "--name", "a".repeat(127), "--tag", `k=${"Ab1".repeat(40)}`]),
    ).toEqual([])
    // Long paths and names of letters and digits are not key text (a DER body starts with MI).
    const longPath =
      "Certs2025/WebServer1/Production/Frontends/East/Gateway/Listener443/Chain/Leaf2025Cert/Current"
    expect(
      pemArgumentProblems(["deploy", "--cert", `${longPath}Extra1`, "--name", `A1${"b".repeat(118)}`]),
    ).toEqual([])
  })
})
