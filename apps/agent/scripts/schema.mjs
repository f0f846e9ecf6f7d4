// Write schema/agent-config.schema.json from the Effect Schema (via the built agent).
import { execFileSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const text = execFileSync(process.execPath, [join(root, "dist", "bin.js"), "--print-schema"], {
  encoding: "utf8",
})
writeFileSync(join(root, "schema", "agent-config.schema.json"), text)
console.log("schema/agent-config.schema.json written")
