/** Certificates and keys made at test time, in memory (the CLI's own throwaway PKI). */
import { type DemoPki, type Issued, makePki } from "../src/cli/throwawayPki.js"

export interface Fixtures {
  /** The EC CAs: every EC leaf's issuers. */
  readonly pki: DemoPki
  /** The EC CAs' chain (intermediate, root). */
  readonly chainPem: string
  /** The chain of the CAs that issued `leaf` (RSA CAs for an RSA leaf). */
  readonly chainOf: (leaf: Issued) => string
  /** leaf + chain + key in one PEM bundle, for `--cert -`. */
  readonly bundle: (leaf: Issued) => string
  /** A leaf, issued by CAs of its own key type (Key Vault refuses an RSA leaf an EC CA signed). */
  readonly leaf: (options?: Parameters<DemoPki["leaf"]>[1]) => Promise<Issued>
}

export const makeFixtures = async (): Promise<Fixtures> => {
  const [pki, rsaPki] = await Promise.all([
    makePki("kvdeploy test"),
    makePki("kvdeploy test RSA", { kind: "RSA", bits: 2048 }),
  ])
  const chainPem = pki.intermediate.certPem + pki.root.certPem
  const rsaChainPem = rsaPki.intermediate.certPem + rsaPki.root.certPem
  const chainOf = (leaf: Issued) => (leaf.spec.kind === "RSA" ? rsaChainPem : chainPem)
  return {
    pki,
    chainPem,
    chainOf,
    bundle: (leaf) => leaf.certPem + chainOf(leaf) + leaf.keyPem,
    leaf: (options) => (options?.key?.kind === "RSA" ? rsaPki : pki).leaf("CN=api.example.test", options),
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
