/**
 * PKCS#12 through `@kvdeploy/pkcs12`: reading imported PFX files and writing
 * the backing secret (blank password) of PKCS#12 versions.
 */
import { decodePfx, encodePfx } from "@kvdeploy/pkcs12"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"

export interface Material {
  readonly leaf: Uint8Array
  readonly chain: ReadonlyArray<Uint8Array>
  readonly key: Uint8Array
}

export type PfxEncoding = "modern" | "legacy"

export type DecodeFailure = { readonly reason: string; readonly detail: string }

export interface PfxCodecFunctions {
  readonly decode: (bytes: Uint8Array, password: string) => Promise<Material | DecodeFailure>
  readonly encode: (material: Material, encoding: PfxEncoding, friendlyName: string) => Promise<Uint8Array>
}

const codec: PfxCodecFunctions = {
  decode: async (bytes, password) => {
    // decodePfx has no asynchronous step: it runs on this stack, without a fiber scheduled
    // through the promise queue (~0.1 ms of a ~3 ms decode). Were it ever to suspend,
    // runSyncExit would answer a defect rather than a decode failure: the decode then runs
    // again the asynchronous way, so the answer is the same.
    // A Java keystore's trusted-certificate entry off the key entry's chain is kvdeploy's refusal,
    // not Key Vault's: the vault imports such a file, and so does the emulator.
    const decode = () => decodePfx(bytes, Redacted.make(password), { trustedOffChain: "keep" })
    let exit = Effect.runSyncExit(decode())
    if (Exit.isFailure(exit) && !exit.cause.reasons.some((r) => r._tag === "Fail"))
      exit = await Effect.runPromiseExit(decode())
    if (Exit.isSuccess(exit)) {
      const m = exit.value
      return { leaf: m.leaf, chain: m.chain, key: Redacted.value(m.key) }
    }
    for (const r of exit.cause.reasons) {
      if (r._tag === "Fail") return { reason: r.error.reason, detail: r.error.detail }
    }
    return { reason: "malformed", detail: "the PFX could not be read" }
  },
  encode: (material, encoding, friendlyName) =>
    Effect.runPromise(
      encodePfx(
        { leaf: material.leaf, chain: material.chain, key: Redacted.make(material.key) },
        { encoding, password: Redacted.make(""), friendlyName },
      ),
    ),
}

export const loadPfxCodec = (): Promise<PfxCodecFunctions | undefined> => Promise.resolve(codec)

export const isDecodeFailure = (v: Material | DecodeFailure): v is DecodeFailure => "reason" in v
