// Bundle the CLI with esbuild: a tiny ESM entry (dist/bin.js) and chunks, so
// `kvdeploy --help` parses a couple of files instead of hundreds of modules.
// Workspace packages are bundled from their TypeScript sources (the
// `@kvdeploy/source` condition). The Azure SDKs, pkijs and the emulator land in
// chunks that only the handlers needing them import. @peculiar/x509 and its
// ASN.1 packages are bundled too (reflect-metadata first, in import order): loaded
// from node_modules, resolving their hundred-odd CommonJS files cost a deploy
// 0.14-0.18 s of CPU, a fifth of the whole run. prom-client stays external.
import { spawnSync } from "node:child_process"
import { chmodSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { build, version as esbuildVersion } from "esbuild"
import { bundleIsCurrent, writeBundleStamp } from "../../../scripts/bundle-stamp.mjs"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
// --if-changed (the tests' global setup): keep dist/ when it was bundled from exactly the files on disk.
if (process.argv.includes("--if-changed") && bundleIsCurrent(root, { esbuildVersion })) {
  console.log("kvdeploy bundle is current (dist/.bundle-inputs.json)")
  process.exit(0)
}
rmSync(join(root, "dist"), { recursive: true, force: true })
const startedMs = Date.now()
const result = await build({
  absWorkingDir: root,
  entryPoints: { bin: "src/bin.ts" },
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node22",
  conditions: ["@kvdeploy/source"],
  external: ["prom-client"],
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __kvdeployCreateRequire } from 'node:module'; const require = __kvdeployCreateRequire(import.meta.url);",
  },
  chunkNames: "chunks/[name]-[hash]",
  sourcemap: "linked",
  legalComments: "none",
  minifyWhitespace: true,
  minifySyntax: true,
  metafile: true,
  logLevel: "warning",
})
// dist/bin.js is the executable (shebang); dist/kvdeploy lets `PATH=apps/cli/dist:$PATH` find it by name.
chmodSync(join(root, "dist", "bin.js"), 0o755)
symlinkSync("bin.js", join(root, "dist", "kvdeploy"))
// Help is static: render it once per command, as the CLI itself renders it (dist/help.json).
const commands = [
  "",
  "deploy",
  "plan",
  "restore",
  "show",
  "versions",
  "list",
  "verify",
  "validate",
  "doctor",
  "emulator",
  "demo",
]
const rendered = spawnSync(process.execPath, [join(root, "dist", "bin.js"), JSON.stringify(commands)], {
  env: { ...process.env, KVDEPLOY_RENDER_HELP: "1", KVDEPLOY_NO_HELP_CACHE: "1" },
  encoding: "utf8",
  maxBuffer: 16 * 1024 * 1024,
})
if (rendered.status !== 0) throw new Error(`rendering the help pages failed: ${rendered.stderr}`)
const pages = JSON.parse(rendered.stdout)
for (const c of commands) if (!pages[c]?.plain) throw new Error(`no help rendered for "${c}"`)
writeFileSync(join(root, "dist", "help.json"), `${JSON.stringify(pages)}\n`)
writeBundleStamp(root, {
  metafiles: [result.metafile],
  options: { esbuildVersion },
  startedMs,
  extra: [fileURLToPath(import.meta.url), join(root, "dist", "help.json")],
})
const outputs = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith(".js"))
const total = outputs.reduce((n, [, o]) => n + o.bytes, 0)
console.log(
  `kvdeploy bundled: dist/bin.js and ${outputs.length - 1} chunk(s), ${Math.round(total / 1024)} KiB in all`,
)
