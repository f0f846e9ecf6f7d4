import { readMaterial } from "../packages/kv-emulator/dist/material.js"
const { generateKey, issue } = await import("@kvdeploy/pkcs12/testing")
const { encodePfx, decodePfx } = await import("@kvdeploy/pkcs12")
const Effect = await import("effect/Effect")
const Redacted = await import("effect/Redacted")
const N = Number(process.argv[2] ?? 200)
const bodies = []
for (let i = 0; i < N; i++) {
  const key = await generateKey("RSA-2048")
  const der = await issue({ subject: `CN=b${i}`, key, sans: [{ type: "dns", value: `b${i}.t` }], keyUsage: 5, extendedKeyUsage: ["1.3.6.1.5.5.7.3.1"], notAfter: new Date(Date.now() + 30 * 86400000) })
  const pfx = await Effect.runPromise(encodePfx({ leaf: der, chain: [], key: Redacted.make(key.pkcs8) }, { encoding: "modern", password: Redacted.make("bench") }))
  bodies.push(Buffer.from(pfx).toString("base64"))
}
const pw = Redacted.make("bench")
const run = async (label, f) => {
  const t = performance.now(); const c = process.cpuUsage()
  for (const b of bodies) await f(b)
  const u = process.cpuUsage(c)
  console.log(label, ((performance.now() - t) / N).toFixed(3), "ms wall", ((u.user + u.system) / 1000 / N).toFixed(3), "ms cpu")
}
for (let r = 0; r < 3; r++) {
  await run("readMaterial", (b) => readMaterial(b, "bench"))
  await run("decodePfx   ", (b) => Effect.runPromise(decodePfx(new Uint8Array(Buffer.from(b, "base64")), pw)))
}
