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
