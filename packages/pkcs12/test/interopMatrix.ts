/**
 * The interop matrix shared by interop.test.ts and interop-openssl.test.ts (two files, so that
 * vitest's two workers share the matrix's tool runs): leaf keys RSA 2048/3072/4096 and EC
 * P-256/P-384/P-521 x chains of 1 to 4 certificates, each encoded modern and legacy with
 * kvdeploy's encoder. Each test file builds its own copy in its beforeAll (`buildMatrix`).
 */
import { createHash, createPrivateKey } from "node:crypto"
import type { CertificateMaterial } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { decodePfx, encodePfx } from "../src/index.js"
import {
  generateKey,
  type KeySpec,
  keySpecs,
  makeAuthorities,
  makeMaterial,
  type TestKey,
  toPem,
} from "./fixtures.js"

export const encodings = ["modern", "legacy"] as const
export type Encoding = (typeof encodings)[number]
export const lengths = [1, 2, 3, 4] as const
export const PASSWORD = "kvdeploy-interop-Pw1"

const materials = new Map<string, CertificateMaterial>()
const written = new Map<string, Uint8Array>()
export const id = (spec: KeySpec, length: number, encoding?: Encoding) =>
  `${spec}/${length}${encoding ? `/${encoding}` : ""}`

export const material = (spec: KeySpec, length: number): CertificateMaterial => {
  const m = materials.get(id(spec, length))
  if (m === undefined) throw new Error(`no material ${id(spec, length)}`)
  return m
}
export const pfxOf = (spec: KeySpec, length: number, encoding: Encoding): Uint8Array => {
  const p = written.get(id(spec, length, encoding))
  if (p === undefined) throw new Error(`no PFX ${id(spec, length, encoding)}`)
  return p
}

export const encode = (m: CertificateMaterial, encoding: Encoding, password = PASSWORD) =>
  Effect.runPromise(encodePfx(m, { encoding, password: Redacted.make(password), friendlyName: "kvdeploy" }))
export const decode = (pfx: Uint8Array, password = PASSWORD) =>
  Effect.runPromise(decodePfx(pfx, Redacted.make(password)))

export const sha1Hex = (der: Uint8Array): string => createHash("sha1").update(der).digest("hex")
export const pemOfKey = (pkcs8: Uint8Array): string => toPem("PRIVATE KEY", pkcs8)
export const keyOfPem = (pem: string): Uint8Array =>
  new Uint8Array(createPrivateKey(pem).export({ type: "pkcs8", format: "der" }))

/** Every key, material and PFX of the matrix (the calling file's beforeAll). */
export const buildMatrix = async (): Promise<void> => {
  const authorities = await makeAuthorities()
  const keys = new Map<KeySpec, TestKey>()
  for (const spec of keySpecs) keys.set(spec, await generateKey(spec))
  for (const spec of keySpecs) {
    const key = keys.get(spec)
    if (key === undefined) continue
    for (const length of lengths) {
      const m = await makeMaterial(
        key,
        length,
        authorities,
        `CN=${spec.toLowerCase()}-${length}.example.test`,
      )
      materials.set(id(spec, length), m)
      for (const encoding of encodings) written.set(id(spec, length, encoding), await encode(m, encoding))
    }
  }
}
