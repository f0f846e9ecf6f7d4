/**
 * The PEM text of a Key Vault PEM import, in memory: the leaf, then its chain in issuer order (the
 * certificates that do not link to the leaf after it, as in a PFX), then the key as an unencrypted
 * PKCS#8 `PRIVATE KEY`, each block in @peculiar/x509's PemConverter armour (64-character lines)
 * with `\n` line endings. Key Vault's PEM import takes exactly that: one chain and an unencrypted
 * PKCS#8 key (it refuses PKCS#1 `RSA PRIVATE KEY`). Never built when the key does not match the
 * leaf.
 */
import "reflect-metadata"
import type { CertificateMaterial } from "@kvdeploy/core"
import { MaterialInvalid, type PfxEncodeError } from "@kvdeploy/core"
import * as x509 from "@peculiar/x509"
import * as Effect from "effect/Effect"
import { analyseMaterialNow, keyPairRefusal, unreadableRefusal } from "./inspect.js"

const bufferOf = (bytes: Uint8Array): ArrayBuffer =>
  bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer

/**
 * Build the PEM of an import (UTF-8 bytes). Refuses (PfxEncodeError) when the key does not match
 * the leaf, or the material cannot be read.
 */
export const encodePem = (material: CertificateMaterial): Effect.Effect<Uint8Array, PfxEncodeError> =>
  Effect.useSpan("pkcs12.encodePem", (): Effect.Effect<Uint8Array, PfxEncodeError> => {
    const analysed = analyseMaterialNow(material)
    if (analysed instanceof MaterialInvalid) return Effect.fail(unreadableRefusal(analysed, "the PEM"))
    const refused = keyPairRefusal(analysed, "the PEM")
    if (refused !== undefined) return Effect.fail(refused)
    const certificates: Array<ArrayBuffer> = [bufferOf(analysed.leaf.der)]
    for (const indices of [analysed.order.ordered, analysed.order.unrelated])
      for (const i of indices) {
        const c = analysed.chain[i]
        if (c !== undefined) certificates.push(bufferOf(c.der))
      }
    // The analysed copy of the key: the bytes whose match with the leaf was just checked.
    const text = `${x509.PemConverter.encode(certificates, "CERTIFICATE")}\n${x509.PemConverter.encode(bufferOf(analysed.pkcs8), "PRIVATE KEY")}\n`
    return Effect.succeed(new TextEncoder().encode(text))
  })
