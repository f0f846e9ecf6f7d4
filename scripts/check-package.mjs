// Packs a library package as it would be published (`pnpm pack`) and checks
// that another project can install and import it from the tarball:
// - no `workspace:` or `catalog:` range is left in the packed package.json;
// - every target of `exports`, `bin`, `main` and `types` is in the tarball,
//   and each `exports` entry with `import` has `default` too, so a CommonJS
//   project can require() it (Node 22.12 and later load ES modules so);
// - every package its built code imports (dist/**/*.js and *.d.ts) is a
//   dependency or peer dependency (or a Node built-in);
// - `effect` is a peer dependency, never a dependency: with it as a
//   dependency, a project on another effect version (npm's latest, say) gets
//   a copy per kvdeploy package, and a `Redacted` made by one copy cannot be
//   read by another ("Unable to get redacted value"), nor do their types match.
// Usage: node scripts/check-package.mjs packages/core [packages/pkcs12 ...]
// Prints each problem and exits 1 when there is one.
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { builtinModules } from "node:module"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"

const singleCopy = ["effect"]
const rangeFields = ["dependencies", "peerDependencies", "optionalDependencies"]

const tarball = (dir, work) => {
  const out = execFileSync("pnpm", ["pack", "--pack-destination", work], { cwd: dir, encoding: "utf8" })
  const lines = out.trim().split("\n")
  return lines[lines.length - 1].trim()
}

const tarText = (file, member) => execFileSync("tar", ["-xOzf", file, member], { encoding: "utf8" })

const specifiers = (text) => {
  const found = new Set()
  const patterns = [
    /^\s*(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/gm,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ]
  for (const pattern of patterns) for (const m of text.matchAll(pattern)) found.add(m[1])
  return found
}

const packageOf = (specifier) => {
  if (specifier.startsWith(".") || specifier.startsWith("/") || specifier.startsWith("#")) return undefined
  if (specifier.startsWith("node:") || builtinModules.includes(specifier.split("/")[0])) return undefined
  const parts = specifier.split("/")
  return specifier.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]
}

const targets = (value) =>
  typeof value === "string"
    ? [value]
    : value !== null && typeof value === "object"
      ? Object.values(value).flatMap(targets)
      : []

/** The problems of one package directory, as lines; empty when it packs soundly. */
export const checkPackage = (dir) => {
  const work = mkdtempSync(join(tmpdir(), "kvdeploy-pack-"))
  try {
    const file = tarball(resolve(dir), work)
    const files = new Set(
      execFileSync("tar", ["-tzf", file], { encoding: "utf8" })
        .trim()
        .split("\n")
        .map((f) => f.replace(/^package\//, "")),
    )
    const manifest = JSON.parse(tarText(file, "package/package.json"))
    const name = manifest.name
    const problems = []
    for (const field of rangeFields) {
      for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
        if (/^(workspace|catalog):/.test(range))
          problems.push(`${name}: ${field}.${dep} is "${range}" in the packed package.json; pack with pnpm`)
      }
    }
    const declared = new Set([
      name,
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
    ])
    const pointed = [
      ...targets(manifest.exports),
      ...targets(manifest.bin),
      ...targets(manifest.main),
      ...targets(manifest.types),
    ]
    for (const target of pointed) {
      const path = target.replace(/^\.\//, "")
      if (!files.has(path)) problems.push(`${name}: ${target} (named in package.json) is not in the tarball`)
    }
    for (const [subpath, entry] of Object.entries(manifest.exports ?? {})) {
      if (
        typeof entry === "object" &&
        entry !== null &&
        entry.import !== undefined &&
        entry.default === undefined
      )
        problems.push(
          `${name}: exports["${subpath}"] has "import" but no "default": require() of it fails (ERR_PACKAGE_PATH_NOT_EXPORTED) where Node loads ES modules with require (22.12 and later)`,
        )
    }
    for (const dep of singleCopy) {
      if (manifest.dependencies?.[dep] !== undefined)
        problems.push(
          `${name}: ${dep} is a dependency; make it a peer dependency (a range such as "^4.1.0") so that a project has one copy`,
        )
    }
    const undeclared = new Map()
    for (const path of files) {
      if (!/^dist\/.*\.(js|d\.ts)$/.test(path)) continue
      for (const specifier of specifiers(tarText(file, `package/${path}`))) {
        const dep = packageOf(specifier)
        if (dep !== undefined && !declared.has(dep) && !undeclared.has(dep)) undeclared.set(dep, path)
      }
    }
    for (const [dep, path] of undeclared)
      problems.push(`${name}: ${path} imports ${dep}, which is neither a dependency nor a peer dependency`)
    return problems
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const problems = process.argv.slice(2).flatMap(checkPackage)
  for (const line of problems) console.error(line)
  if (problems.length > 0) process.exit(1)
  console.log(`packed soundly: ${process.argv.slice(2).join(", ")}`)
}
