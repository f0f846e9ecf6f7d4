/**
 * PKCS#12 through `@kvdeploy/pkcs12` (decodePfx / encodePfx). Loaded lazily and
 * checked at run time, so the emulator still serves PEM imports when the codec
 * cannot be loaded (the PFX paths then answer a clear 400/500 instead).
 */
import * as Exit from "effect/Exit"
import * as Effect from "effect/Effect"
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

type EffectFn = (...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, unknown>

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null

let loaded: Promise<PfxCodecFunctions | undefined> | undefined

const describe = (e: unknown): DecodeFailure => {
  if (isRecord(e)) {
    const reason = typeof e.reason === "string" ? e.reason : "malformed"
    const detail = typeof e.detail === "string" ? e.detail : typeof e.message === "string" ? e.message : String(e)
    return { reason, detail }
  }
  return { reason: "malformed", detail: String(e) }
}

const asBytes = (v: unknown): Uint8Array | undefined => (v instanceof Uint8Array ? v : undefined)

export const loadPfxCodec = (): Promise<PfxCodecFunctions | undefined> => {
  loaded ??= (async () => {
    let mod: Record<string, unknown>
    try {
      mod = (await import("@kvdeploy/pkcs12")) as Record<string, unknown>
    } catch {
      return undefined
    }
    const decodePfx = mod.decodePfx
    const encodePfx = mod.encodePfx
    if (typeof decodePfx !== "function" || typeof encodePfx !== "function") return undefined
    const dec = decodePfx as EffectFn
    const enc = encodePfx as EffectFn
    return {
      decode: async (bytes, password) => {
        const exit = await Effect.runPromiseExit(dec(bytes, Redacted.make(password)))
        if (Exit.isFailure(exit)) {
          const err = exit.cause.reasons.find((r) => r._tag === "Fail")
          return describe(err && "error" in err ? err.error : undefined)
        }
        const v = exit.value
        if (!isRecord(v)) return { reason: "malformed", detail: "codec returned no material" }
        const leaf = asBytes(v.leaf)
        const key = isRecord(v.key) || typeof v.key === "object" ? asBytes(Redacted.value(v.key as Redacted.Redacted<unknown>)) : undefined
        const chain = Array.isArray(v.chain) ? v.chain.map(asBytes).filter((c): c is Uint8Array => c !== undefined) : []
        if (!leaf) return { reason: "no-certificate", detail: "no certificate in the PFX" }
        if (!key) return { reason: "no-key", detail: "no private key in the PFX" }
        return { leaf, chain, key }
      },
      encode: async (material, encoding, friendlyName) => {
        const out = await Effect.runPromise(
          enc(
            { leaf: material.leaf, chain: material.chain, key: Redacted.make(material.key) },
            { encoding, password: Redacted.make(""), friendlyName },
          ),
        )
        const bytes = asBytes(out)
        if (!bytes) throw new Error("codec returned no bytes")
        return bytes
      },
    }
  })()
  return loaded
}

export const isDecodeFailure = (v: Material | DecodeFailure): v is DecodeFailure => "reason" in v
