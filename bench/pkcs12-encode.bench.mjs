// PKCS#12 encode speed: kvdeploy (modern profile) against node-forge in the
// same process and against `openssl pkcs12 -export` spawned per run.
// Material: an RSA-2048 leaf with a 2-certificate chain (intermediate, root),
// every writer at 2048 KDF/MAC iterations. Prints medians and ratios
// (kvdeploy / baseline: below 1 means kvdeploy is faster) and whether the
// goal "faster than both" is met. Run `pnpm --filter @kvdeploy/pkcs12 build` first.
import { spawn } from "node:child_process"
import { generateKeyPairSync } from "node:crypto"
import { encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import forge from "node-forge"

const RUNS = Number(process.env.BENCH_RUNS ?? 40)
const SPAWN_RUNS = Number(process.env.BENCH_SPAWN_RUNS ?? 12)
const WARMUP = 5
const PASSWORD = "bench-password"
const ITERATIONS = 2048

// --- material -------------------------------------------------------------
const rsaKeys = () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  return {
    pem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    der: new Uint8Array(privateKey.export({ type: "pkcs8", format: "der" })),
    forgePrivate: forge.pki.privateKeyFromPem(privateKey.export({ type: "pkcs1", format: "pem" }).toString()),
    forgePublic: forge.pki.publicKeyFromPem(publicKey.export({ type: "spki", format: "pem" }).toString()),
  }
}
const makeCert = (subjectCn, subjectKey, issuerCn, issuerKey, serial, ca) => {
  const cert = forge.pki.createCertificate()
  cert.publicKey = subjectKey.forgePublic
  cert.serialNumber = serial
  cert.validity.notBefore = new Date(Date.now() - 3600_000)
  cert.validity.notAfter = new Date(Date.now() + 30 * 86400_000)
  cert.setSubject([{ name: "commonName", value: subjectCn }])
  cert.setIssuer([{ name: "commonName", value: issuerCn }])
  cert.setExtensions([{ name: "basicConstraints", cA: ca }])
  cert.sign(issuerKey.forgePrivate, forge.md.sha256.create())
  return cert
}
const rootKey = rsaKeys()
const intKey = rsaKeys()
const leafKey = rsaKeys()
const root = makeCert("Bench Root", rootKey, "Bench Root", rootKey, "01", true)
const intermediate = makeCert("Bench Intermediate", intKey, "Bench Root", rootKey, "02", true)
const leaf = makeCert("bench.example.test", leafKey, "Bench Intermediate", intKey, "03", false)
const derOf = (cert) =>
  new Uint8Array(Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), "binary"))
const material = {
  leaf: derOf(leaf),
  chain: [derOf(intermediate), derOf(root)],
  key: Redacted.make(leafKey.der),
}
const pemCerts = [leaf, intermediate, root].map((c) => forge.pki.certificateToPem(c)).join("")

// --- measuring --------------------------------------------------------------
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}
/** Run the contenders in turn, `runs` rounds, so a busy machine slows them alike; medians per contender. */
const timeInterleaved = async (runs, contenders) => {
  const names = Object.keys(contenders)
  for (let i = 0; i < WARMUP; i++) for (const n of names) await contenders[n]()
  const times = Object.fromEntries(names.map((n) => [n, []]))
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? names : [...names].reverse()
    for (const n of order) {
      globalThis.gc?.()
      const t0 = process.hrtime.bigint()
      await contenders[n]()
      times[n].push(Number(process.hrtime.bigint() - t0) / 1e6)
    }
  }
  return Object.fromEntries(names.map((n) => [n, median(times[n])]))
}

const kvdeploy = () =>
  Effect.runPromise(
    encodePfx(material, { encoding: "modern", password: Redacted.make(PASSWORD), friendlyName: "bench" }),
  )

const nodeForge = () => {
  const asn1 = forge.pkcs12.toPkcs12Asn1(leafKey.forgePrivate, [leaf, intermediate, root], PASSWORD, {
    algorithm: "aes256",
    prfAlgorithm: "sha256",
    count: ITERATIONS,
    generateLocalKeyId: true,
    friendlyName: "bench",
    useMac: true,
  })
  return forge.asn1.toDer(asn1).getBytes()
}

const spawnWith = (command, args, stdin, fd3) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: fd3 === undefined ? ["pipe", "pipe", "pipe"] : ["pipe", "pipe", "pipe", "pipe"],
      env: { ...process.env, PFXPW: PASSWORD },
    })
    const out = []
    child.stdout.on("data", (d) => out.push(d))
    child.on("error", reject)
    child.on("close", (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${command} exited ${code}`)),
    )
    child.stdin.end(stdin)
    if (fd3 !== undefined) child.stdio[3].end(fd3)
  })

// `openssl pkcs12 -export` reads its -in file twice, so the key goes through a
// second pipe (bash process substitution): nothing touches the disk.
const openssl = () =>
  spawnWith(
    "bash",
    [
      "-c",
      `exec openssl pkcs12 -export -name bench -passout env:PFXPW -iter ${ITERATIONS} -in <(cat) -inkey <(cat <&3)`,
    ],
    pemCerts,
    leafKey.pem,
  )
const bashOnly = () => spawnWith("bash", ["-c", "cat >/dev/null; cat <&3 >/dev/null"], pemCerts, leafKey.pem)

// --- run -------------------------------------------------------------------
const check = await kvdeploy()
if (!(check instanceof Uint8Array) || check.length < 1000) throw new Error("kvdeploy produced no PFX")

const inProcess = await timeInterleaved(RUNS, { kvdeploy, nodeForge })
const tK = inProcess.kvdeploy
const tF = inProcess.nodeForge
let tO
let tB
let tK2
try {
  const spawned = await timeInterleaved(SPAWN_RUNS, { kvdeploy, openssl, bashOnly })
  tO = spawned.openssl
  tB = spawned.bashOnly
  tK2 = spawned.kvdeploy
} catch (e) {
  console.log(`openssl baseline unavailable: ${e.message}`)
}

const fmt = (ms) => `${ms.toFixed(2)} ms`
const ratio = (a, b) => (a / b).toFixed(3)
console.log("PKCS#12 encode, RSA-2048 leaf + 2-certificate chain, modern profile, 2048 iterations")
console.log(
  `  kvdeploy encodePfx      median ${fmt(tK)} over ${RUNS} runs (PBES2 AES-256 key and certs, HMAC-SHA-256 MAC)`,
)
console.log(
  `  node-forge toPkcs12Asn1 median ${fmt(tF)}  ratio kvdeploy/forge = ${ratio(tK, tF)}` +
    "  (forge: AES-256/PBKDF2-SHA-256 key, certificates unencrypted, SHA-1 MAC: less work than kvdeploy)",
)
if (tO !== undefined) {
  console.log(
    `  openssl pkcs12 -export  median ${fmt(tO)} over ${SPAWN_RUNS} spawns  ratio kvdeploy/openssl = ${ratio(tK2, tO)}` +
      ` (kvdeploy ${fmt(tK2)} in the same rounds; process start included; the bash pipe wrapper alone costs ${fmt(tB)}, ratio without it ${ratio(tK2, Math.max(tO - tB, 0.001))})`,
  )
}
const met = tK < tF && (tO === undefined || tK2 < tO)
console.log(
  `  goal "faster than node-forge and openssl": ${met ? "MET" : "NOT MET"}${tO === undefined ? " (openssl not measured)" : ""}`,
)
