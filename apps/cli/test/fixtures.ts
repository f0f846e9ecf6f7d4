/** Certificates and keys made at test time, in memory (the CLI's own throwaway PKI). */
import { type DemoPki, type Issued, makePki } from "../src/cli/throwawayPki.js"

export interface Fixtures {
  readonly pki: DemoPki
  readonly chainPem: string
  /** leaf + chain + key in one PEM bundle, for `--cert -`. */
  readonly bundle: (leaf: Issued) => string
  readonly leaf: (options?: Parameters<DemoPki["leaf"]>[1]) => Promise<Issued>
}

export const makeFixtures = async (): Promise<Fixtures> => {
  const pki = await makePki("kvdeploy test")
  const chainPem = pki.intermediate.certPem + pki.root.certPem
  return {
    pki,
    chainPem,
    bundle: (leaf) => leaf.certPem + chainPem + leaf.keyPem,
    leaf: (options) => pki.leaf("CN=api.example.test", options),
  }
}

/** The P-256 key's PEM with one bit of its private scalar flipped (its stated public point kept): a damaged key. */
export const damagedKeyPem = (keyPem: string): string => {
  const der = Buffer.from(
    (/-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END/.exec(keyPem)?.[1] ?? "").replace(/\s+/g, ""),
    "base64",
  )
  const at = der.indexOf(Buffer.from("0201010420", "hex"))
  if (at < 0) throw new Error("not a P-256 PKCS#8 key")
  der[at + 5 + 31] = (der[at + 5 + 31] ?? 0) ^ 1
  const body = der
    .toString("base64")
    .match(/.{1,64}/g)
    ?.join("\n")
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`
}
