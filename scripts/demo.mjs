// kvdeploy demo (interim, until the CLI's `kvdeploy demo` exists): generate a
// throwaway CA, intermediate and leaf in memory, build the PKCS#12 that kvdeploy
// would import into Key Vault (modern and legacy encodings), read it back, and
// print what it contains. No key material is written to disk or printed.
import { spawnSync } from "node:child_process"
import { webcrypto } from "node:crypto"
import { decodePfx, encodePfx, inspectMaterial } from "@kvdeploy/pkcs12"
import * as x509 from "@peculiar/x509"
import { Effect, Redacted } from "effect"

const crypto = webcrypto
x509.cryptoProvider.set(crypto)
const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" }
const day = 86_400_000

async function issue(subject, issuer, issuerKeys, { ca }) {
  const keys = await crypto.subtle.generateKey(alg, true, ["sign", "verify"])
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: Buffer.from(crypto.getRandomValues(new Uint8Array(8)))
      .toString("hex")
      .replace(/^[89a-f]/, "1"),
    subject,
    issuer: issuer ?? subject,
    notBefore: new Date(Date.now() - day),
    notAfter: new Date(Date.now() + (ca ? 3650 : 90) * day),
    signingAlgorithm: alg,
    publicKey: keys.publicKey,
    signingKey: (issuerKeys ?? keys).privateKey,
    extensions: ca
      ? [new x509.BasicConstraintsExtension(true, undefined, true)]
      : [new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "api.example.test" }])],
  })
  return { cert, keys }
}

const root = await issue("CN=kvdeploy demo root", undefined, undefined, { ca: true })
const inter = await issue("CN=kvdeploy demo intermediate", root.cert.subject, root.keys, { ca: true })
const leaf = await issue("CN=api.example.test", inter.cert.subject, inter.keys, { ca: false })
const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", leaf.keys.privateKey))

// The chain is given out of order on purpose: kvdeploy orders it leaf-first.
const material = {
  leaf: new Uint8Array(leaf.cert.rawData),
  chain: [new Uint8Array(root.cert.rawData), new Uint8Array(inter.cert.rawData)],
  key: Redacted.make(pkcs8),
}

const program = Effect.gen(function* () {
  const inspected = yield* inspectMaterial(material)
  console.log("material")
  console.log(`  leaf          ${inspected.leaf.subject}  serial ${inspected.leaf.serialHex}`)
  console.log(`  x5t           ${inspected.leaf.x5t}`)
  console.log(
    `  key           ${inspected.key.keyType} ${inspected.key.curve ?? inspected.key.keySize}, matches leaf: ${inspected.keyMatchesLeaf}`,
  )
  console.log(`  chain         ${inspected.chain.map((c) => c.subject).join("  ->  ")}`)
  console.log(
    `  problems      ${inspected.problems.length === 0 ? "none" : inspected.problems.map((p) => p.message).join("; ")}`,
  )
  const password = Redacted.make("")
  for (const encoding of ["modern", "legacy"]) {
    const pfx = yield* encodePfx(material, { encoding, password, friendlyName: "api-prod" })
    const back = yield* decodePfx(pfx, password)
    const same = Buffer.compare(Buffer.from(back.leaf), Buffer.from(material.leaf)) === 0
    console.log(
      `\n${encoding} PKCS#12: ${pfx.length} bytes, read back: leaf ${same ? "identical" : "DIFFERENT"}, chain ${back.chain.length} certificate(s)`,
    )
    const args = [
      "pkcs12",
      "-in",
      "/dev/stdin",
      "-passin",
      "pass:",
      "-nokeys",
      "-info",
      ...(encoding === "legacy" ? ["-legacy"] : []),
    ]
    const r = spawnSync("openssl", args, { input: pfx, encoding: "utf8" })
    if (r.status === 0) {
      const info = r.stderr.split("\n").filter((l) => /PKCS7|Shrouded|MAC|PBES2|pbeWith/i.test(l))
      for (const line of info) console.log(`  openssl: ${line.trim()}`)
    } else if (r.error === undefined) {
      console.log(`  openssl could not read it: ${r.stderr.trim()}`)
    }
  }
})

await Effect.runPromise(program).catch((error) => {
  console.error(`demo failed: ${error.message}`)
  process.exit(1)
})
