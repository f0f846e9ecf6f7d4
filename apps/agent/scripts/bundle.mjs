// Bundle kvdeploy-agent with esbuild into one file with every dependency
// inside (the Azure SDKs included): dist/bin.js (ESM, `node dist/bin.js`),
// or with --sea dist/sea/agent.cjs (CommonJS, the input of Node's
// single-executable-application build, scripts/sea.mjs). The material worker
// (src/materialWorker.ts) is bundled the same way next to it:
// dist/materialWorker.js, or dist/sea/materialWorker.cjs (a SEA asset).
//
// Memory: V8 keeps the whole source text of the bundle in its heap for as long
// as the process runs. The bundle is minified (whitespace and syntax; names are
// kept, so stack traces stay readable, and the source map is linked) and made
// pure ASCII: a single non-ASCII character (esbuild leaves them in regular
// expression literals) makes V8 hold the whole text as a two-byte string.
// Together that is about 3.5 MB of heap instead of 10. The worker's bundle is
// treated alike (a worker holds its own copy while it runs).
import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { build, version as esbuildVersion } from "esbuild"
import { bundleIsCurrent, clearBundleStamp, writeBundleStamp } from "../../../scripts/bundle-stamp.mjs"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const sea = process.argv.includes("--sea")
// What decides dist/bin.js besides its input files.
const stampOptions = { fromDist: process.env.KVDEPLOY_BUNDLE_FROM_DIST === "1", esbuildVersion }
// --if-changed (the tests' global setup): keep dist/ when it was bundled from exactly the files on disk.
if (!sea && process.argv.includes("--if-changed") && bundleIsCurrent(root, stampOptions)) {
  console.log("kvdeploy-agent bundle is current (dist/.bundle-inputs.json)")
  process.exit(0)
}
if (!sea) {
  clearBundleStamp(root)
  rmSync(join(root, "dist", "bin.js"), { force: true })
  rmSync(join(root, "dist", "materialWorker.js"), { force: true })
  rmSync(join(root, "dist", "kvdeploy-agent"), { force: true })
}
const started = Date.now()
// The ESM bundle's require (a bundled CommonJS dependency may require a Node built-in).
const esmRequire =
  "import { createRequire as __kvdeployCreateRequire } from 'node:module'; const require = __kvdeployCreateRequire(import.meta.url);"
/** One bundle: the agent (src/bin.ts), or its material worker (src/materialWorker.ts, see src/materialPool.ts). */
const bundle = async ({ entry, esmOut, seaOut, banner }) => {
  const result = await build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: sea ? seaOut : esmOut,
    bundle: true,
    format: sea ? "cjs" : "esm",
    platform: "node",
    target: "node22",
    // Workspace packages from their sources (KVDEPLOY_BUNDLE_FROM_DIST=1: from their dist/ build output).
    conditions: process.env.KVDEPLOY_BUNDLE_FROM_DIST === "1" ? [] : ["@kvdeploy/source"],
    banner: sea ? { js: "" } : { js: banner },
    define: sea ? { "import.meta.url": "__kvdeployImportMetaUrl" } : {},
    inject: sea ? [join(root, "scripts", "import-meta-url.mjs")] : [],
    sourcemap: sea ? false : "linked",
    legalComments: "none",
    minifyWhitespace: true,
    minifySyntax: true,
    charset: "ascii",
    write: false,
    metafile: true,
    logLevel: "warning",
  })
  for (const file of result.outputFiles) {
    mkdirSync(dirname(file.path), { recursive: true })
    const isCode = file.path.endsWith(".js") || file.path.endsWith(".cjs")
    // \uXXXX is valid wherever esbuild leaves a non-ASCII character (string, regular expression, identifier, comment).
    writeFileSync(
      file.path,
      isCode
        ? file.text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
        : file.contents,
    )
  }
  metafiles.push(result.metafile)
  return Object.entries(result.metafile.outputs).find(([f]) => f.endsWith(".js") || f.endsWith(".cjs"))
}
const metafiles = []
const outputs = await Promise.all([
  bundle({
    entry: "src/bin.ts",
    esmOut: "dist/bin.js",
    seaOut: "dist/sea/agent.cjs",
    banner: `#!/usr/bin/env node\n${esmRequire}`,
  }),
  // Started by the agent as a worker thread: next to dist/bin.js, or a SEA asset (scripts/sea.mjs).
  bundle({
    entry: "src/materialWorker.ts",
    esmOut: "dist/materialWorker.js",
    seaOut: "dist/sea/materialWorker.cjs",
    banner: esmRequire,
  }),
])
// dist/bin.js is the executable (shebang); dist/kvdeploy-agent lets `PATH=apps/agent/dist:$PATH` find it by name.
if (!sea) {
  chmodSync(join(root, "dist", "bin.js"), 0o755)
  symlinkSync("bin.js", join(root, "dist", "kvdeploy-agent"))
  writeBundleStamp(root, {
    metafiles,
    options: stampOptions,
    extra: [fileURLToPath(import.meta.url)],
    startedMs: started,
  })
}
console.log(
  `kvdeploy-agent bundled: ${outputs.map((out) => `${out?.[0]} ${Math.round((out?.[1].bytes ?? 0) / 1024)} KiB`).join(", ")} in ${Date.now() - started} ms`,
)
