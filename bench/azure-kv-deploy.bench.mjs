// Deploy latency through kvdeploy (core's deploy program + @kvdeploy/azure-kv over the
// Azure SDKs + the pkcs12 codec) against the emulator over HTTPS, as a ratio to the bare
// SDK making the same three requests (getCertificate, importCertificate, getCertificate)
// in the same run, same process, same emulator, same kind of credential.
//
// Baseline A (the goal's baseline): the three bare SDK calls with a PFX built beforehand.
// Baseline B: the same plus building the PFX in the loop (pkcs12 encode), the work any
//             script deploying PEM material must do as well.
// kvdeploy:   deploy(request) with PEM-equivalent material (DER + PKCS#8): preflight
//             (inspect + encode), snapshot, import (with its policy), verify.
//
// Also measured, to split the cost: the adapter alone (the three Vault port calls with the
// PFX built beforehand), with the key facts stated on the import request, and read from
// the PFX (a decode) as it must do today: core's deploy program does not state them.
//
// Each iteration deploys a fresh EC P-256 certificate (so every deploy imports), the
// three variants alternate so machine noise hits them alike, and the medians are
// compared. Goal: kvdeploy / baseline A <= 1.15. Printed honestly: met or not.
// Round trips are counted from the emulator's request log (challenges apart).
import "reflect-metadata"
import { webcrypto } from "node:crypto"
import { ClientSecretCredential } from "@azure/identity"
import { CertificateClient } from "@azure/keyvault-certificates"
import * as AzureKeyVault from "@kvdeploy/azure-kv"
import { AuditLog, deploy, Metrics, Vault, validateTargetConfigSync } from "@kvdeploy/core"
import { start } from "@kvdeploy/kv-emulator"
import * as Pkcs12 from "@kvdeploy/pkcs12"
import * as x509 from "@peculiar/x509"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"

x509.cryptoProvider.set(webcrypto)
const RUNS = Number(process.env.KVDEPLOY_BENCH_RUNS ?? 40)
const WARMUP = 5
const VAULT = "bench"

const emulator = await start({ vaults: [VAULT], throttling: false, warn: () => {} })
try {
  const ec = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" }
  const caKeys = await webcrypto.subtle.generateKey(ec, true, ["sign", "verify"])
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: "CN=kvdeploy bench CA",
    keys: caKeys,
    signingAlgorithm: ec,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 365 * 86400_000),
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  })
  let serial = 0x4000
  const makeMaterial = async () => {
    const keys = await webcrypto.subtle.generateKey(ec, true, ["sign", "verify"])
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: (serial++).toString(16),
      subject: "CN=bench.example.test",
      issuer: ca.subject,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ec,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 90 * 86400_000),
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "bench.example.test" }])],
    })
    return {
      leaf: new Uint8Array(leaf.rawData),
      chain: [new Uint8Array(ca.rawData)],
      key: Redacted.make(new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey))),
    }
  }
  const total = WARMUP + RUNS
  const materials = { kvdeploy: [], bareA: [], bareB: [], portsStated: [], portsDecoded: [] }
  for (let i = 0; i < total; i++)
    for (const k of Object.keys(materials)) materials[k].push(await makeMaterial())
  const blank = Redacted.make("")
  const encode = (m) => Effect.runPromise(Pkcs12.encodePfx(m, { encoding: "modern", password: blank }))
  const prebuilt = { bareA: [], portsStated: [], portsDecoded: [] }
  for (const k of Object.keys(prebuilt)) for (const m of materials[k]) prebuilt[k].push(await encode(m))

  const configOf = (name) => {
    const r = validateTargetConfigSync({
      ...emulator.targetConfig(VAULT, name, "clientSecret"),
      tags: { env: "bench" },
    })
    if (Result.isFailure(r)) throw new Error(r.failure.message)
    return r.success
  }
  const target = configOf("kvdeploy-cert")
  const id = emulator.clientSecret
  const credentialOptions = {
    authorityHost: emulator.authorityHost,
    disableInstanceDiscovery: true,
    tlsOptions: { ca: emulator.caPem },
  }
  // kvdeploy: one long-lived runtime (clients, token and challenge cached, as in the agent).
  const runtime = ManagedRuntime.make(
    AzureKeyVault.layerConfig(
      target,
      new ClientSecretCredential(id.tenantId, id.clientId, id.clientSecret, credentialOptions),
      { trustedCaPem: emulator.caPem },
    ).pipe(Layer.provideMerge(Layer.mergeAll(Pkcs12.layer, Metrics.layerNoop, AuditLog.layerNoop))),
  )
  // Bare SDK: one client, same options.
  const client = new CertificateClient(
    emulator.vault(VAULT).url,
    new ClientSecretCredential(id.tenantId, id.clientId, id.clientSecret, credentialOptions),
    { tlsOptions: { ca: emulator.caPem }, disableChallengeResourceVerification: true },
  )
  const tags = { env: "bench", "certctl-managed-by": "certctl", "certctl-certificate-id": "bench" }
  const bare = async (name, pfx) => {
    await client.getCertificate(name).catch((e) => {
      if (e.statusCode !== 404) throw e
    })
    await client.importCertificate(name, pfx, { tags })
    await client.getCertificate(name)
  }

  const times = { kvdeploy: [], bareA: [], bareB: [], portsStated: [], portsDecoded: [] }
  const requests = { kvdeploy: [], bareA: [], bareB: [], portsStated: [], portsDecoded: [] }
  const ports = (name, pfx, keyFacts) =>
    runtime.runPromise(
      Effect.gen(function* () {
        const vault = yield* Vault
        yield* Effect.result(vault.getLatest(name))
        yield* vault.importVersion({ name, pfx, password: blank, tags, ...(keyFacts ? { keyFacts } : {}) })
        yield* vault.getLatest(name)
      }),
    )
  const timed = async (key, i, f) => {
    const since = emulator.requests.mark()
    const t0 = performance.now()
    await f()
    const ms = performance.now() - t0
    if (i >= WARMUP) {
      times[key].push(ms)
      requests[key].push(
        emulator.requests.entries({ vault: VAULT, since }).filter((e) => !e.challenge).length,
      )
    }
  }
  const outcomes = new Map()
  for (let i = 0; i < total; i++) {
    const order = [
      [
        "kvdeploy",
        async () => {
          const outcome = await runtime.runPromise(
            deploy({ target, material: materials.kvdeploy[i], certificateId: "bench" }),
          )
          outcomes.set(outcome._tag, (outcomes.get(outcome._tag) ?? 0) + 1)
        },
      ],
      ["bareA", () => bare("bare-a-cert", prebuilt.bareA[i])],
      [
        "portsStated",
        () => ports("ports-stated-cert", prebuilt.portsStated[i], { keyType: "EC", curve: "P-256" }),
      ],
      ["portsDecoded", () => ports("ports-decoded-cert", prebuilt.portsDecoded[i], undefined)],
      ["bareB", async () => bare("bare-b-cert", await encode(materials.bareB[i]))],
    ]
    // Rotate the order each iteration.
    for (let j = 0; j < order.length; j++) {
      const [key, f] = order[(i + j) % order.length]
      await timed(key, i, f)
    }
  }
  await runtime.dispose()

  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b)
    const mid = s.length >> 1
    return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
  }
  const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]))
  const r = Object.fromEntries(Object.entries(requests).map(([k, v]) => [k, median(v)]))
  console.log(
    `azure-kv deploy latency against the emulator (HTTPS), ${RUNS} runs each after ${WARMUP} warm-up, medians`,
  )
  console.log(`  outcomes of kvdeploy deploys: ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(", ")}`)
  console.log(
    `  kvdeploy deploy              ${m.kvdeploy.toFixed(1)} ms  (${r.kvdeploy} Key Vault requests)`,
  )
  console.log(
    `  baseline A: bare SDK, 3 calls ${m.bareA.toFixed(1)} ms  (${r.bareA} requests, PFX built beforehand)`,
  )
  console.log(`  baseline B: A + PFX encode    ${m.bareB.toFixed(1)} ms  (${r.bareB} requests)`)
  const ratioA = m.kvdeploy / m.bareA
  const ratioB = m.kvdeploy / m.bareB
  console.log(
    `  adapter, 3 port calls, key facts stated   ${m.portsStated.toFixed(1)} ms  (${r.portsStated} requests)`,
  )
  console.log(
    `  adapter, 3 port calls, key facts decoded  ${m.portsDecoded.toFixed(1)} ms  (${r.portsDecoded} requests)`,
  )
  console.log(
    `  kvdeploy / baseline A = ${ratioA.toFixed(3)}  goal <= 1.15: ${ratioA <= 1.15 ? "met" : "NOT met"}`,
  )
  console.log(`  kvdeploy / baseline B = ${ratioB.toFixed(3)}`)
  console.log(`  adapter (key facts stated) / baseline A  = ${(m.portsStated / m.bareA).toFixed(3)}`)
  console.log(`  adapter (key facts decoded) / baseline A = ${(m.portsDecoded / m.bareA).toFixed(3)}`)
} finally {
  await emulator.stop()
}
