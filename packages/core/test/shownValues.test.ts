/**
 * What messages may show of input values: key material in base64 or hex (also cut short) is never
 * shown; names, paths, URLs, ids and thumbprints are.
 */
import { execFileSync } from "node:child_process"
import { generateKeyPairSync, randomUUID, X509Certificate } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import {
  holdsEncodedBase64,
  keyInField,
  looksLikeDerBase64,
  looksLikeKeyText,
  quotedValue,
  shownPath,
  unfitTagValue,
  withoutKeyText,
  withoutSecretFields,
  withoutSecretValues,
  withoutTokens,
} from "../src/index.js"

const ecKey = () =>
  generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "der", type: "pkcs8" })
const rsaKey = () =>
  generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "der", type: "pkcs8" })

describe("looksLikeKeyText", () => {
  it("recognises keys in base64, whole or cut short, and private scalars in hex", () => {
    for (let i = 0; i < 40; i++) {
      const der = ecKey()
      const b64 = der.toString("base64")
      expect(looksLikeKeyText(b64)).toBe(true)
      // Cut short by a paste, as the CLI once echoed it.
      expect(looksLikeKeyText(b64.slice(0, 180))).toBe(true)
      // The last 36 bytes hold the private scalar's end; its hex alone.
      expect(looksLikeKeyText(der.subarray(-40, -8).toString("hex"))).toBe(true)
    }
    expect(looksLikeKeyText(rsaKey().toString("base64").slice(0, 300))).toBe(true)
    expect(looksLikeKeyText("-----BEGIN PRIVATE KEY-----")).toBe(true)
    expect(looksLikeKeyText("line\nbreak")).toBe(true)
  })

  it("recognises a key or certificate in base64 cut at any length from 64 characters", () => {
    // A rule on how the characters look (class changes) missed about one EC key in six cut at 100:
    // the first 48 characters of every P-256 PKCS#8 key are the same, few-change header.
    const kinds: Record<string, () => Buffer> = {
      "EC P-256 PKCS#8": ecKey,
      "EC P-384 SEC1": () =>
        generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey.export({ format: "der", type: "sec1" }),
      "RSA PKCS#1": () =>
        generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
          format: "der",
          type: "pkcs1",
        }),
      "RSA PKCS#8, encrypted": () =>
        generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
          format: "der",
          type: "pkcs8",
          cipher: "aes-256-cbc",
          passphrase: "x",
        }),
      certificate: () => {
        const pem = execFileSync(
          "openssl",
          [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "/dev/null",
          ].concat([
            "-subj",
            "/CN=api.example.com/O=Contoso",
            "-days",
            "30",
            "-addext",
            "subjectAltName=DNS:api.example.com",
          ]),
          { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
        )
        return Buffer.from(new X509Certificate(pem).raw)
      },
    }
    for (const [kind, make] of Object.entries(kinds)) {
      for (let i = 0; i < 25; i++) {
        const b64 = make().toString("base64")
        for (let length = 64; length <= b64.length; length++)
          expect(looksLikeKeyText(b64.slice(0, length)), `${kind} cut at ${length}`).toBe(true)
      }
    }
  })

  it("leaves names, paths, URLs, ids and thumbprints alone", () => {
    for (const value of [
      "/etc/kvdeploy/certs/api-prod/fullchain.pem",
      "/var/lib/kubelet/pods/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/volumes/kubernetes.io~secret/tls/tls.key",
      "C:\\ProgramData\\kvdeploy\\ApiProductionWestEurope2024\\cert.pem",
      "ProductionWestEurope2024CertificateForTheApiGateway",
      "https://my-vault.vault.azure.net/certificates/api-prod/0123456789abcdef0123456789abcdef",
      // Names and paths a review found refused by an earlier rule: CamelCase with digits, a git id in a path.
      "WwwContosoCom2024Q3WildcardSanCert01Eu2Prod",
      "MyContosoWebApp2024ProdWestEurope01FrontendCertificateForApiGw2",
      "/srv/Certs2024/WebApp1/Prod02/Api3V2/tls.crt",
      "/srv/releases/4b825dc642cb6eb9a060e54bf8d69288fbee4904/tls.crt",
      // A SHA-1 thumbprint in hex, and an SRI digest whose base64 starts with "M".
      "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
      "sha384-MBnEH6+F9+CB3OEvQ1MkO0W/jsFNSXqnuY3DMaSjlf9QXkT12XsAiqfFkpFoXmPP",
      randomUUID(),
      "0123456789abcdef0123456789abcdef",
      "wRHZammwtNq3dN8SasAGj5yApIs",
      "api.example.com",
      "managed_identity",
    ])
      expect(looksLikeKeyText(value), value).toBe(false)
  })
})

describe("a key's base64 from inside it (a line of a PEM body, not its first)", () => {
  const keys = () =>
    Array.from({ length: 20 }, () => [ecKey(), rsaKey()]).flatMap((pair) =>
      pair.map((k) => k.toString("base64")),
    )

  it("three lines or more from any line of the body are an unfit tag value and a key not shown", () => {
    for (const b64 of keys())
      for (let at = 64; at + 192 <= b64.length; at += 64) {
        const run = b64.slice(at, at + 192)
        // Not from the DER's start: the earlier rules did not see these.
        expect(looksLikeDerBase64(run), run).toBe(false)
        expect(holdsEncodedBase64(run), run).toBe(true)
        expect(unfitTagValue(run), run).toBe(true)
        expect(unfitTagValue(`note ${run}`), run).toBe(true)
        expect(keyInField(run), run).toBe("(a key of 192 characters, not shown)")
      }
  })

  it("one line alone reads as encoded bytes nearly always (a rule on how characters look; 99.7 % measured)", () => {
    let lines = 0
    let caught = 0
    for (const b64 of keys())
      for (const line of (b64.match(/.{64}/g) ?? []).slice(1)) {
        lines++
        if (unfitTagValue(line) && keyInField(line) !== line) caught++
      }
    expect(lines).toBeGreaterThanOrEqual(500)
    expect(caught / lines).toBeGreaterThanOrEqual(0.98)
  })

  it("leaves tag values and field names that read as words alone", () => {
    for (const value of [
      "ContosoWebApp2024ProdWestEurope01FrontendCertificateForApiGw2ContosoWebApp2024ProdWestEurope01",
      "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/rg-prod/providers/Microsoft.KeyVault/vaults/kv1",
      "https://github.com/contoso/infrastructure/blob/main/terraform/environments/production/keyvault/certificates.tf",
      // A SHA-256 in hex (a thumbprint, a digest) is a fine tag value.
      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a089f86d081884c7d659a2feaa0c55ad015",
      "owner=platform-team@contoso.com;cost-center=4711;ticket=CHG0012345",
    ]) {
      expect(holdsEncodedBase64(value), value).toBe(false)
      expect(unfitTagValue(value), value).toBe(false)
      expect(keyInField(value), value).toBe(value)
    }
  })
})

describe("what messages show", () => {
  it("quotedValue and shownPath describe key text by its length", () => {
    const scalarHex = ecKey().subarray(-32).toString("hex")
    expect(quotedValue(scalarHex)).toBe("a string of 64 characters, not shown")
    expect(quotedValue("api.example.com")).toBe('"api.example.com"')
    // What a terminal would act on is escaped: a right-to-left override, a C1 control.
    expect(quotedValue("a\u202eevil\u0085x")).toBe('"a\\u202eevil\\u0085x"')
    // Not a string: named by what it is ("object" was said of null).
    expect([null, 3, false, ["a"], { a: 1 }, undefined].map(quotedValue)).toEqual([
      "null",
      "3",
      "false",
      "a list",
      "an object",
      "undefined",
    ])
    // One line from inside a PEM key (64 base64 characters): hidden, every line of 40 keys.
    for (let i = 0; i < 40; i++) {
      const lines = (
        ecKey()
          .toString("base64")
          .match(/.{1,64}/g) ?? []
      ).filter((l) => l.length === 64)
      expect(lines.length).toBeGreaterThan(0)
      for (const line of lines) {
        expect(quotedValue(line), line).toBe("a string of 64 characters, not shown")
        expect(quotedValue(line.slice(0, 40)), line).toBe("a string of 40 characters, not shown")
        // The short last line of a body, with a space a quoted YAML value kept.
        expect(quotedValue(` ${line.slice(0, 44)} `), line).toBe("a string of 46 characters, not shown")
      }
    }
    for (let i = 0; i < 10; i++)
      for (const line of (rsaKey().toString("base64").match(/.{64}/g) ?? []).slice(1))
        expect(quotedValue(line), line).toBe("a string of 64 characters, not shown")
    // Names of 64 characters stay quoted.
    const longName = `${"api-".repeat(15)}prod`
    expect(quotedValue(longName)).toBe(JSON.stringify(longName))
    const pasted = ecKey().toString("base64").slice(0, 180)
    expect(shownPath(pasted)).toBe("(180 characters that look like key text, not shown)")
    expect(shownPath("/etc/kvdeploy/tls.key")).toBe("/etc/kvdeploy/tls.key")
    // A relative source path resolved against the configuration's directory: no `/./` shown.
    expect(shownPath("/etc/kvdeploy/./certs/./tls.key")).toBe("/etc/kvdeploy/certs/tls.key")
    expect(shownPath("/etc/kvdeploy/.")).toBe("/etc/kvdeploy")
    // `..` and names that start with a dot are kept.
    expect(shownPath("/etc/kvdeploy/../tls/.hidden/.key")).toBe("/etc/kvdeploy/../tls/.hidden/.key")
    expect(shownPath("./tls.key")).toBe("./tls.key")
    expect(shownPath("/.")).toBe("/")
    expect(shownPath("")).toBe("")
  })

  it("shownPath escapes what a terminal acts on: C0 and C1 controls, DEL, and the marks that reorder text", () => {
    // An OSC sequence that sets the window title, a BEL, a clear-screen CSI, a carriage return.
    expect(shownPath("/tmp/x\u001b]0;PWNED\u0007\u001b[2J/key.pem")).toBe(
      "/tmp/x\\x1b]0;PWNED\\x07\\x1b[2J/key.pem",
    )
    expect(shownPath("/srv/a\u0000b\tc\u007f\u0008")).toBe("/srv/a\\x00b\\x09c\\x7f\\x08")
    // A line break (CR, LF) is described by its length, as key text may hold one: not shown either.
    expect(shownPath("/srv/a\rb")).toBe("(8 characters that look like key text, not shown)")
    // C1: the one-byte CSI and OSC; the right-to-left override.
    expect(shownPath("/srv/\u009b2J\u009d0;t\u009c/\u202ecod.pem")).toBe(
      "/srv/\\u009b2J\\u009d0;t\\u009c/\\u202ecod.pem",
    )
    // Text outside the controls is kept (names in any script, spaces).
    expect(shownPath("/srv/Zertifikate für Ünïcode/tls key.pem")).toBe(
      "/srv/Zertifikate für Ünïcode/tls key.pem",
    )
    for (let c = 0; c < 0xa0; c++) {
      const shown = shownPath(`/a${String.fromCharCode(c)}b`)
      // biome-ignore lint/suspicious/noControlCharactersInRegex: what is looked for
      expect(shown, `U+${c.toString(16)}`).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/)
    }
  })

  it("withoutKeyText removes a response body's base64 (a PFX) from an SDK message, and keeps the rest", () => {
    const pfxLike = rsaKey().toString("base64")
    const message = `Error "SyntaxError: Unexpected token" occurred while parsing the response body - {"value":"${pfxLike}"} <!-- proxy -->. Request https://my-vault.vault.azure.net/secrets/api-prod/0123456789abcdef0123456789abcdef`
    const shown = withoutKeyText(message)
    expect(shown).not.toContain(pfxLike.slice(100, 140))
    expect(shown).toContain(`[base64 text of ${pfxLike.length} characters, not shown]`)
    expect(shown).toContain(
      "https://my-vault.vault.azure.net/secrets/api-prod/0123456789abcdef0123456789abcdef",
    )
    expect(
      withoutKeyText("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"),
    ).toBe("[PEM text, not shown]")
  })

  it("withoutKeyText removes private values in hex: one run, and colon-joined as openssl -text prints them", () => {
    for (const [type, options] of [
      ["ec", { namedCurve: "P-256" }],
      ["ec", { namedCurve: "P-384" }],
      ["rsa", { modulusLength: 2048 }],
    ] as const) {
      const { privateKey } = generateKeyPairSync(type as "ec", options as { namedCurve: string })
      const d = Buffer.from(privateKey.export({ format: "jwk" }).d ?? "", "base64url").toString("hex")
      const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString()
      // What openssl prints of the key (PEM block left out: only the fields, in colon-joined hex).
      const text = execFileSync("openssl", ["pkey", "-text", "-noout"], { input: pem }).toString()
      const colons = (hex: string) => hex.match(/../g)?.join(":") ?? ""
      // The private value's bytes as openssl writes them, 4 at a time, inside a line (no break).
      const pieces = (hex: string) =>
        Array.from({ length: Math.floor(hex.length / 8) }, (_, i) => colons(hex.slice(i * 8, i * 8 + 8)))
      expect(text).toContain(pieces(d).find((p) => text.includes(p)) ?? "(no piece of d in the text)")
      for (const message of [
        `refused: ${text}`,
        // The same output quoted in JSON (escaped line breaks), in JSON in JSON, and in one line.
        `refused: ${JSON.stringify(text)}`,
        `refused: ${JSON.stringify(JSON.stringify(text))}`,
        // Without leading zeros (BigInt's toString(16), BN_bn2hex): a scalar of 60 digits, of 30 bytes.
        `refused: ${d.slice(4)}`,
        `refused: ${colons(d.slice(4))}`,
        `refused: ${colons(d)}`,
        `refused: ${d} (status 400)`,
        `refused: ${d.toUpperCase()}`,
      ]) {
        const shown = withoutKeyText(message)
        expect(shown).toMatch(/\[hex text of \d+ characters, not shown\]/)
        for (const piece of pieces(d)) expect(shown).not.toContain(piece)
        for (let at = 0; at + 8 <= d.length; at += 8)
          expect(shown.toLowerCase()).not.toContain(d.slice(at, at + 8))
      }
    }
    // Shorter hex stays: a SHA-1 thumbprint (also colon-joined), a version id, a GUID.
    const kept = [
      "thumbprint 3F2A9C0D1E4B5A6978C3D2E1F0A9B8C7D6E5F4A3",
      "thumbprint 3F:2A:9C:0D:1E:4B:5A:69:78:C3:D2:E1:F0:A9:B8:C7:D6:E5:F4:A3",
      "https://my-vault.vault.azure.net/certificates/api/0123456789abcdef0123456789abcdef",
      `request ${randomUUID()}`,
    ]
    for (const value of kept) expect(withoutKeyText(value)).toBe(value)
  })

  it("withoutKeyText removes DER in base64url and in JSON with escaped slashes, and keeps names and paths", () => {
    for (let i = 0; i < 20; i++) {
      const der = rsaKey()
      const escaped = JSON.stringify({ value: der.toString("base64") }).replace(/\//g, "\\/")
      const url = der.toString("base64url")
      for (const secret of [
        url,
        escaped,
        ecKey().toString("base64url"),
        // Glued to a word that holds an "M" of its own, and JSON in JSON.
        `PEM_${url}`,
        `Key-Material-${ecKey().toString("base64url")}`,
        JSON.stringify(escaped),
      ]) {
        const shown = withoutKeyText(`the answer was ${secret} (status 200)`)
        for (let at = 0; at + 40 <= secret.length; at += 20)
          expect(shown).not.toContain(secret.slice(at, at + 40))
        expect(shown).toContain("(status 200)")
      }
    }
    const kept = [
      "kvdeploy-agent-production-frontend-certificate-renewal-westeurope-2026-12-01-blue-green",
      "/var/lib/kvdeploy-agent/state_dir/Production_Frontend/api-gateway_certificates/2026-12/tls.pem",
      "AZURE_CLIENT_ID_FOR_THE_PRODUCTION_FRONTEND_DEPLOYMENT_OF_THE_API_GATEWAY_CERTIFICATE_2026",
      `${randomUUID()}-${randomUUID()}-${randomUUID()}`,
      "certctl-certificate-id=the-api-gateway-production-certificate-for-westeurope-and-northeurope",
      "Payments-Frontend-Api2026-WestEurope-Blue-Green-Renewal-V2-Identity-Backend-Door-Gateway-01",
      "Payments_Frontend_Api2026_WestEurope_Blue_Green_Renewal_V2_Identity_Backend_Door_Gateway_01",
      "MyCompany-Payments-Frontend-Api2026-WestEurope-Blue-Green-Renewal-V2-Identity-Backend-Door",
    ]
    for (const value of kept) expect(withoutKeyText(`refused: ${value}`)).toBe(`refused: ${value}`)
  })
})

describe("identity secrets in a message", () => {
  const seg = (s: string) => Buffer.from(s).toString("base64url")
  const jwt = `${seg('{"alg":"RS256","kid":"k1","typ":"JWT"}')}.${seg(
    JSON.stringify({ aud: "https://vault.azure.net", oid: randomUUID(), exp: 1999999999 }),
  )}.${Buffer.from(randomUUID() + randomUUID()).toString("base64url")}`

  it("withoutKeyText removes JWT-shaped tokens (also a JWE, a spaced header, one without its signature), and names them", () => {
    const spaced = `${seg('{ "alg": "none" }')}.${seg('{"sub":"system:serviceaccount:ns:sa"}')}.`
    const jwe = `${seg('{"alg":"RSA-OAEP","enc":"A256GCM"}')}.${seg("k".repeat(40))}.${seg("iv-iv-iv-iv")}.${seg("c".repeat(60))}.${seg("tag-tag")}`
    for (const token of [jwt, spaced, jwe, `${jwt.split(".").slice(0, 2).join(".")}.`]) {
      for (const text of [
        `<html>token ${token}</html>`,
        `Description: failed for ${token} - Correlation ID: Not Available`,
        `Bearer ${token}`,
      ]) {
        const shown = withoutKeyText(text)
        expect(shown).toContain("[a token, not shown]")
        for (const part of token.split(".").filter((p) => p.length > 4)) expect(shown).not.toContain(part)
      }
    }
    expect(withoutTokens(`a ${jwt} b`)).toBe("a [a token, not shown] b")
  })

  it("withoutTokens removes a token wrapped across lines (a page or a log that breaks long lines), and keeps the lines around it", () => {
    // A header long enough to be cut before its first dot, as an identity provider's is (kid, x5t).
    const longHeader = seg(JSON.stringify({ alg: "RS256", kid: randomUUID(), x5t: randomUUID(), typ: "JWT" }))
    const long = `${longHeader}.${jwt.split(".")[1]}.${jwt.split(".")[2]}`
    for (const token of [jwt, long]) {
      for (const width of [20, 64, 76]) {
        for (const [breakWith, indent] of [
          ["\n", ""],
          ["\r\n", "    "],
        ] as const) {
          const wrapped = (token.match(new RegExp(`.{1,${width}}`, "g")) ?? []).join(`${breakWith}${indent}`)
          const text = `AADSTS50000: the assertion${breakWith}${indent}${wrapped}${breakWith}Trace ID: 7f3a${breakWith}Done`
          const shown = withoutTokens(text)
          expect(shown, `width ${width}`).toBe(
            `AADSTS50000: the assertion${breakWith}${indent}[a token, not shown]${breakWith}Trace ID: 7f3a${breakWith}Done`,
          )
          expect(withoutKeyText(text)).not.toContain(token.slice(width, width + 20))
        }
      }
    }
    // A token that starts near a line's end: its first piece is short (a few characters of its
    // header), and a break may fall anywhere, in the payload's start too.
    for (const firstPiece of [3, 5, 10, longHeader.length + 3]) {
      const wrapped = `${long.slice(0, firstPiece)}\n${(long.slice(firstPiece).match(/.{1,76}/g) ?? []).join("\n")}`
      expect(withoutTokens(`token: ${wrapped}\nTrace ID: 7f3a`), `first piece ${firstPiece}`).toBe(
        "token: [a token, not shown]\nTrace ID: 7f3a",
      )
    }
    // A token whole on one line is not joined to a next line of base64url and dots (a GUID, a host).
    expect(withoutTokens(`${jwt}\nlogin.microsoftonline.com\n7f3a9c1e-2b4d-4e5f-8a6b-1c2d3e4f5a6b`)).toBe(
      "[a token, not shown]\nlogin.microsoftonline.com\n7f3a9c1e-2b4d-4e5f-8a6b-1c2d3e4f5a6b",
    )
    // Lines of base64url that begin with no JSON header, or hold no dot, are no token.
    const plain = `${seg("not a json header at all, only text")}\n${seg("x".repeat(30))}`
    expect(withoutTokens(plain)).toBe(plain)
    const dotless = `${longHeader}\n${seg("y".repeat(30))}\nend`
    expect(withoutTokens(dotless)).toBe(dotless)
    // A token on the line after a long base64url line that is none is still found.
    const afterRun = `${seg("z".repeat(40))}\n${jwt}`
    expect(withoutTokens(afterRun)).toBe(`${seg("z".repeat(40))}\n[a token, not shown]`)
  })

  it("withoutTokens leaves many header-like lines without a dot whole (each judged once)", () => {
    // Each line starts like a token's header and is long enough to be wrapped; none holds a dot.
    const lines = Array.from({ length: 2_000 }, () => seg('{"alg":"none","pad":"xxxxxxxx"}'))
    const text = lines.join("\n")
    expect(withoutTokens(text)).toBe(text)
    // One run of 8 MB that starts like a header: judged, not a RangeError of the pattern's engine
    // (a bounded repetition there overflowed the stack from about 6 MB).
    const run = `eyJ${"A".repeat(8_000_000)}`
    expect(withoutTokens(run)).toBe(run)
    expect(withoutTokens(`${run}.b`)).toBe("[a token, not shown]")
  })

  it("withoutKeyText removes the values of a token request's and answer's secret fields, form and JSON, keeping their names", () => {
    const form =
      "client_id=8a1f&client_secret=Q~abc.DEF_123-xyz%7E&grant_type=client_credentials&scope=https%3A%2F%2Fvault.azure.net%2F.default"
    expect(withoutKeyText(`could not process ${form}`)).toBe(
      "could not process client_id=8a1f&client_secret=[a secret, not shown]&grant_type=client_credentials&scope=https%3A%2F%2Fvault.azure.net%2F.default",
    )
    expect(
      withoutSecretFields(
        "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=opaque123&x=1",
      ),
    ).toBe(
      "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=[a token, not shown]&x=1",
    )
    const answer = {
      access_token: "opaque-access",
      refresh_token: "opaque-refresh",
      expires_on: "1999999999",
    }
    expect(withoutKeyText(JSON.stringify(answer))).toBe(
      '{"access_token":"[a token, not shown]","refresh_token":"[a token, not shown]","expires_on":"1999999999"}',
    )
    // JSON in JSON (an answer quoted in an error's JSON), and spaces around the colon.
    const nested = withoutKeyText(JSON.stringify({ error_description: JSON.stringify(answer) }))
    expect(nested).not.toContain("opaque-")
    expect(nested).toContain('\\"access_token\\":\\"[a token, not shown]\\"')
    expect(withoutSecretFields('{ "Assertion" : "opaque-assertion" }')).toBe(
      '{ "Assertion" : "[a token, not shown]" }',
    )
  })

  it("withoutSecretValues removes a known secret anywhere, as it is, URL-encoded or JSON-escaped, named by its label", () => {
    const secret = 'Q~a b+c/d"e.F_123'
    const label = "the value of AZURE_CLIENT_SECRET"
    for (const text of [
      `x${secret}y`,
      `client_secret=${encodeURIComponent(secret)}&grant_type=client_credentials`,
      `client_secret=${encodeURIComponent(secret).replace(/%20/g, "+")}`,
      JSON.stringify({ said: `echo ${secret}` }),
      // Other encoders: ~ as %7E, lowercase percent codes, slashes escaped in JSON, a form decoded.
      `echo=${encodeURIComponent(secret).replace(/~/g, "%7E")}`,
      `echo=${encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (p) => p.toLowerCase())}`,
      JSON.stringify({ said: secret }).replace(/\//g, "\\/"),
      `decoded: ${secret.replace(/\+/g, " ")}`,
    ]) {
      const shown = withoutSecretValues(text, [{ value: secret, label }])
      expect(shown).toContain("[the value of AZURE_CLIENT_SECRET, not shown]")
      expect(shown).not.toContain("a b+c")
      expect(shown).not.toContain(encodeURIComponent(secret))
    }
    expect(
      withoutSecretValues("in the middle:XsecretValue1X.", [
        { value: "secretValue1", label: "the value of MSI_SECRET" },
      ]),
    ).toBe("in the middle:X[the value of MSI_SECRET, not shown]X.")
    // A long value (a federated token's contents), raw, URL-encoded or JSON-escaped.
    const long = `tok/${"a+b~".repeat(300)}`
    for (const text of [`x${long}y`, `t=${encodeURIComponent(long)}`, JSON.stringify({ t: long })])
      expect(withoutSecretValues(text, [{ value: long, label: "the federated token" }])).toContain(
        "[the federated token, not shown]",
      )
    // Too short to look for: ordinary words would match.
    expect(withoutSecretValues("the header h", [{ value: "h", label: "the value of IDENTITY_HEADER" }])).toBe(
      "the header h",
    )
  })

  it("withoutSecretValues finds a known secret with a backslash where JSON escapes it", () => {
    const secret = String.raw`CONTOSO\svc-deploy7`
    const label = "the value of AZURE_PASSWORD"
    const text = JSON.stringify({ error_description: `login failed for ${secret}` })
    expect(text).toContain(String.raw`CONTOSO\\svc`)
    expect(withoutSecretValues(text, [{ value: secret, label }])).toBe(
      '{"error_description":"login failed for [the value of AZURE_PASSWORD, not shown]"}',
    )
  })

  it("withoutSecretValues finds a known secret whose characters JSON writes as \\u escapes (Python's ensure_ascii, .NET's default encoder)", () => {
    const secret = "Zx8Q~p@ss w0rd+/&=\u00e9!'end\u{1F511}"
    const label = "the value of AZURE_CLIENT_SECRET"
    // The secret's JSON string with `chars` as \\u escapes (a character beyond the BMP as its two halves).
    const escapeAll = (chars: RegExp, hex: (h: string) => string) => {
      const value = JSON.stringify(secret)
        .slice(1, -1)
        .replace(chars, (c) =>
          Array.from(
            { length: c.length },
            (_, i) => `\\u${hex(c.charCodeAt(i).toString(16).padStart(4, "0"))}`,
          ).join(""),
        )
      return `{"echo":"${value}"}`
    }
    const python = escapeAll(/[\u0080-\u{10ffff}]/gu, (h) => h)
    const dotnet = escapeAll(/[+&'<>]|[\u0080-\u{10ffff}]/gu, (h) => h.toUpperCase())
    // Every character escaped, as some writers do for all but letters and digits.
    const everything = escapeAll(/[^A-Za-z0-9]/gu, (h) => h)
    for (const text of [python, dotnet, everything]) {
      expect(text).not.toContain("p@ss w0rd+/&=\u00e9")
      expect(withoutSecretValues(text, [{ value: secret, label }])).toBe(
        '{"echo":"[the value of AZURE_CLIENT_SECRET, not shown]"}',
      )
    }
  })

  it("withoutSecretValues finds a secret with a run of backslashes in a text of backslashes, as it is and JSON-escaped, without trying each way to read them", () => {
    // 30 backslashes: read one by one, each as itself or as JSON's escape, 2^30 ways to try.
    const secret = `pre${"\\".repeat(30)}post`
    const label = "the value of AZURE_CLIENT_SECRET"
    const noise = "\\".repeat(200)
    for (const text of [
      `${noise}${secret}${noise}`,
      `${noise}${JSON.stringify(secret).slice(1, -1)}${noise}`,
      // Not the secret: 60 backslashes, then no "post".
      `${noise}pre${"\\".repeat(60)}x`,
    ])
      expect(withoutSecretValues(text, [{ value: secret, label }]).includes("pre\\")).toBe(text.endsWith("x"))
  })

  it("withoutSecretValues finds a long value (a federated token's contents) form-encoded and JSON-escaped where the encodings differ (a quote, a backslash, a space)", () => {
    const long = `tok "a\\b" ${"c+d~".repeat(80)}`
    expect(long.length).toBeGreaterThan(256)
    const secrets = [{ value: long, label: "the federated token" }]
    const formEncoded = encodeURIComponent(long).replace(/%20/g, "+")
    expect(formEncoded).not.toBe(encodeURIComponent(long))
    expect(withoutSecretValues(`t=${formEncoded}&x=1`, secrets)).toBe(
      "t=[the federated token, not shown]&x=1",
    )
    const json = JSON.stringify({ t: long })
    expect(json).not.toContain(long)
    expect(withoutSecretValues(json, secrets)).toBe('{"t":"[the federated token, not shown]"}')
  })

  it("withoutSecretFields takes a form field's name in any case (CLIENT_SECRET=, Client_Assertion=)", () => {
    expect(withoutSecretFields("CLIENT_SECRET=Q~abc.DEF_123&Client_Assertion=opaque123&grant_type=x")).toBe(
      "CLIENT_SECRET=[a secret, not shown]&Client_Assertion=[a token, not shown]&grant_type=x",
    )
  })

  it("withoutTokens removes a token whose header starts with { and a line break (base64url ew…)", () => {
    const header = seg('{\n  "alg": "RS256",\n  "typ": "JWT"\n}')
    expect(header.startsWith("ew")).toBe(true)
    const token = `${header}.${jwt.split(".")[1]}.${jwt.split(".")[2]}`
    expect(withoutTokens(`Bearer ${token} refused`)).toBe("Bearer [a token, not shown] refused")
    expect(withoutKeyText(`Bearer ${token} refused`)).toBe("Bearer [a token, not shown] refused")
  })

  it("leaves an identity error's useful text as it is", () => {
    for (const text of [
      "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID. Trace ID: 0b4f6c0e-1c1e-4a53-9b0f-1d2e3f405060 Correlation ID: 6f1e7a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
      "ManagedIdentityCredential: Authentication failed. Message client_error: Error(s): Not Available - Timestamp: Not Available - Description: Identity not found",
      "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&grant_type=client_credentials",
      "getaddrinfo ENOTFOUND login.microsoftonline.com; see https://aka.ms/msal.js.errors#network_error",
      "host ewallet-prod-server.examples.com, eyes.example.com, eyJ alone, every.day.example",
      'Headers: {"content-type":"text/html","date":"Sat, 05 Dec 2026 14:23:50 GMT"}',
      "the access_token field was missing; client_secret is required",
    ])
      expect(withoutKeyText(text)).toBe(text)
  })
})
