// parsePem on hostile PEM text (run `pnpm --filter @kvdeploy/pkcs12 build` first): text made of
// BEGIN lines without an END, at 64 KiB, 256 KiB and 1 MiB (the CLI's input limit), against
// parsePem on an ordinary bundle of the same size (certificates, one key) in the same process.
// Ratio = hostile / ordinary, median of the runs: a linear scan keeps it near 1 or below at every
// size; a scan that starts over at every BEGIN grows it with the size (it was ~73 s at 1 MiB).
import { generateKeyPairSync } from "node:crypto"
import "reflect-metadata"
import { parsePem } from "@kvdeploy/pkcs12"
import { generateKey, issue, toPem } from "@kvdeploy/pkcs12/testing"
import * as Effect from "effect/Effect"

const RUNS = Number(process.env.BENCH_RUNS ?? 9)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const timeMs = (f) => {
  const t0 = process.hrtime.bigint()
  f()
  return Number(process.hrtime.bigint() - t0) / 1e6
}
const run = (text) => Effect.runSync(Effect.result(parsePem(text)))

const key = await generateKey("P-256")
const leafDer = await issue({ subject: "CN=bench.example.test", key, ca: false, serialNumber: "01" })
const certPem = toPem("CERTIFICATE", leafDer)
const keyPem = generateKeyPairSync("ec", { namedCurve: "P-256" })
  .privateKey.export({ type: "pkcs8", format: "pem" })
  .toString()

for (const size of [64 * 1024, 256 * 1024, 1024 * 1024]) {
  const line = "-----BEGIN A-----\n"
  const hostile = line.repeat(Math.floor(size / line.length))
  const ordinary = certPem.repeat(Math.floor((size - keyPem.length) / certPem.length)) + keyPem
  // The answers: the hostile text refused as cut short, the ordinary one parsed.
  const h = run(hostile)
  const o = run(ordinary)
  if (h._tag !== "Failure" || !h.failure.problems.some((p) => p.message.includes("is cut short")))
    throw new Error("the hostile text was not refused as cut short")
  if (o._tag !== "Success") throw new Error("the ordinary bundle did not parse")
  const hostileMs = []
  const ordinaryMs = []
  for (let i = 0; i < RUNS; i++) {
    hostileMs.push(timeMs(() => run(hostile)))
    ordinaryMs.push(timeMs(() => run(ordinary)))
  }
  const hm = median(hostileMs)
  const om = median(ordinaryMs)
  console.log(
    `${String(size / 1024).padStart(5)} KiB: hostile ${hm.toFixed(2)} ms, ordinary bundle (${o.success.certificates.length} certificates) ${om.toFixed(2)} ms, hostile / ordinary ${(hm / om).toFixed(3)}`,
  )
}
