// What an app's bundle was built from: every input file esbuild read (its metafile), the
// bundle script, and every output written, each with its size and modification time. The
// CLI's and the agent's test global setups (test/build.ts) re-bundle only when this record no
// longer matches the files on disk, so a test run right after `turbo run build` (CI, `bash
// scripts/dev test`) does not bundle each app a second time, while a test run after an edit of
// any source the bundle holds still tests the edited code.
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"

const stampFile = (root) => join(root, "dist", ".bundle-inputs.json")

const fingerprint = (root, file) => {
  const s = statSync(join(root, file))
  return [file, s.size, s.mtimeMs]
}

/** Forget the record (a bundle is being rebuilt: a failed build leaves none behind). */
export const clearBundleStamp = (root) => rmSync(stampFile(root), { force: true })

/**
 * Record the bundle just written. `metafiles`: esbuild's metafiles of every build of the
 * bundle; `options`: whatever else decides the output (compared as JSON); `extra`: other
 * files the output depends on (the bundle script, files it writes beside the outputs).
 */
export const writeBundleStamp = (root, { metafiles, options, extra = [] }) => {
  const inputs = new Set(extra.map((f) => relative(root, f)))
  const outputs = new Set()
  for (const m of metafiles) {
    for (const f of Object.keys(m.inputs)) inputs.add(f)
    for (const f of Object.keys(m.outputs)) outputs.add(f)
  }
  const files = [...inputs, ...outputs].sort().map((f) => fingerprint(root, f))
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
