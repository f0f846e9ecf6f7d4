// Entry point of the `kvdeploy` binary. It turns on Node's on-disk compile
// cache (bytecode of kvdeploy's own bundle; no data) before the command tree is
// loaded, so later runs skip most of the parse and compile work.
import * as nodeModule from "node:module"

nodeModule.enableCompileCache?.()
const { main } = await import("./main.js")
main(process.argv.slice(2))
