// What an app's bundle was built from: every input file esbuild read (its metafile), the
// bundle script, and every output written, each with its size and modification time. The
// CLI's and the agent's test global setups (test/build.ts) re-bundle only when this record no
// longer matches the files on disk, so a test run right after `turbo run build` (CI, `bash
// scripts/dev test`) does not bundle each app a second time, while a test run after an edit of
// any source the bundle holds still tests the edited code.
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"

const stampFile = (root) => join(root, "dist", ".bundle-inputs.json")

/**
 * Files esbuild reads without listing them among its inputs: the app's tsconfig.json, and the
 * package.json of the app and of every workspace package (their exports decide what resolves).
 */
const configFiles = (root) => {
  const packages = join(root, "..", "..", "packages")
  return [
    join(root, "tsconfig.json"),
    join(root, "package.json"),
    ...readdirSync(packages)
      .map((name) => join(packages, name, "package.json"))
      .filter((file) => existsSync(file)),
  ]
}

/**
 * An input whose modification time is this close to the build's start, or after it, may have been
 * saved while the build read it (or on a file system whose times are coarse): no record is written,
 * and the next --if-changed builds again.
 */
const savedDuringBuildMs = 2_000

const fingerprint = (root, file) => {
  const s = statSync(join(root, file))
  return [file, s.size, s.mtimeMs]
}

/** Forget the record (a bundle is being rebuilt: a failed build leaves none behind). */
export const clearBundleStamp = (root) => rmSync(stampFile(root), { force: true })

/**
 * Record the bundle just written. `metafiles`: esbuild's metafiles of every build of the
 * bundle; `options`: whatever else decides the output (compared as JSON: esbuild's version, settings);
 * `extra`: other files the output depends on (the bundle script), and files the script writes
 * beside the outputs (under dist/, fingerprinted as outputs); `startedMs`: when the build began (Date.now() before it read anything).
 */
export const writeBundleStamp = (root, { metafiles, options, extra = [], startedMs }) => {
  const inputs = new Set([...extra, ...configFiles(root)].map((f) => relative(root, f)))
  const outputs = new Set([...inputs].filter((f) => f.startsWith("dist/")))
  for (const f of outputs) inputs.delete(f)
  for (const m of metafiles) {
    for (const f of Object.keys(m.inputs)) inputs.add(f)
    for (const f of Object.keys(m.outputs)) outputs.add(f)
  }
  const read = [...inputs].map((f) => fingerprint(root, f))
  if (read.some(([, , mtimeMs]) => mtimeMs >= startedMs - savedDuringBuildMs)) {
    clearBundleStamp(root)
    return
  }
  const files = [...read, ...[...outputs].map((f) => fingerprint(root, f))].sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  )
  writeFileSync(stampFile(root), `${JSON.stringify({ options, files })}\n`)
}

/** Whether dist/ holds a bundle of exactly the files on disk now, built with `options`. */
export const bundleIsCurrent = (root, options) => {
  let stamp
  try {
    stamp = JSON.parse(readFileSync(stampFile(root), "utf8"))
  } catch {
    return false
  }
  if (JSON.stringify(stamp.options) !== JSON.stringify(options) || !Array.isArray(stamp.files)) return false
  return stamp.files.every(([file, size, mtimeMs]) => {
    try {
      const [, s, m] = fingerprint(root, file)
      return s === size && m === mtimeMs
    } catch {
      return false
    }
  })
}
