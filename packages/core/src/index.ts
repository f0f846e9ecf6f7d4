export * from "./material.js"
export * from "./ports/PfxCodec.js"
