import * as Effect from "effect/Effect"
import * as Command from "effect/cli/Command"
import * as flags from "../cli/flags.js"

export const emulator = Command.make("emulator", { json: flags.json }, () => Effect.void)
