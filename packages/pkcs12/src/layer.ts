/** The `PfxCodec` port of @kvdeploy/core, implemented with this package. */
import { PfxCodec } from "@kvdeploy/core"
import * as Layer from "effect/Layer"
import { decodePfx } from "./decodePfx.js"
import { encodePem } from "./encodePem.js"
import { encodePfx } from "./encodePfx.js"
import { inspectMaterial } from "./inspect.js"
import { maxEncodedBytes } from "./sizeBound.js"

export const layer: Layer.Layer<PfxCodec> = Layer.succeed(PfxCodec, {
  inspect: inspectMaterial,
  maxEncodedBytes,
  encode: encodePfx,
  encodePem,
  decode: decodePfx,
})
