// Bundle kvdeploy-agent with esbuild into one file with every dependency
// inside (the Azure SDKs included): dist/bin.js (ESM, `node dist/bin.js`),
// or with --sea dist/sea/agent.cjs (CommonJS, the input of Node's
// single-executable-application build, scripts/sea.mjs).
import { rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const sea = process.argv.includes("--sea")
if (!sea) rmSync(join(root, "dist", "bin.js"), { force: true })
const started = Date.now()
const result = await build({
  absWorkingDir: root,
  entryPoints: ["src/bin.ts"],
  outfile: sea ? "dist/sea/agent.cjs" : "dist/bin.js",
  bundle: true,
  format: sea ? "cjs" : "esm",
  platform: "node",
  target: "node22",
  // Workspace packages from their sources (KVDEPLOY_BUNDLE_FROM_DIST=1: from their dist/ build output).
  conditions: process.env.KVDEPLOY_BUNDLE_FROM_DIST === "1" ? [] : ["@kvdeploy/source"],
  banner: sea
    ? { js: "" }
    : {
        js: "#!/usr/bin/env node\nimport { createRequire as __kvdeployCreateRequire } from 'node:module'; const require = __kvdeployCreateRequire(import.meta.url);",
      },
  define: sea ? { "import.meta.url": "__kvdeployImportMetaUrl" } : {},
  inject: sea ? [join(root, "scripts", "import-meta-url.mjs")] : [],
  sourcemap: sea ? false : "linked",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
})
const out = Object.entries(result.metafile.outputs).find(([f]) => f.endsWith(".js") || f.endsWith(".cjs"))
console.log(
  `kvdeploy-agent bundled: ${out?.[0]} ${Math.round((out?.[1].bytes ?? 0) / 1024)} KiB in ${Date.now() - started} ms`,
)
