// Sums the vitest JSON reports of every workspace package into one closing
// line, "tests: N passed, N failed, N skipped", and fails when no test ran.
// Each failed test is named with the first lines of its failure, last, so that
// the tail of a CI log says what failed even when the runner's own output is
// cut or interleaved with the other packages'.
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const root = new URL("..", import.meta.url).pathname
let passed = 0
let failed = 0
let skipped = 0
const perPackage = []
const failures = []
for (const group of ["packages", "apps", "tooling"]) {
  const dir = join(root, group)
  if (!existsSync(dir)) continue
  for (const name of readdirSync(dir)) {
    // One report per part of the package's tests: .vitest-results.json, and .vitest-results.2.json
    // when test-lanes.mjs ran some of its files in the other lane.
    const reports = existsSync(join(dir, name))
      ? readdirSync(join(dir, name)).filter((f) => /^\.vitest-results(\.\d+)?\.json$/.test(f))
      : []
    for (const report of reports.sort()) {
      const file = join(dir, name, report)
      const r = JSON.parse(readFileSync(file, "utf8"))
      passed += r.numPassedTests
      failed += r.numFailedTests
      skipped += r.numPendingTests + (r.numTodoTests ?? 0)
      const part = report === ".vitest-results.json" ? "" : ` (part ${report.split(".")[2]})`
      perPackage.push(`${group}/${name}${part}: ${r.numPassedTests} passed, ${r.numFailedTests} failed`)
      for (const testFile of r.testResults ?? []) {
        const where = `${group}/${name} ${testFile.name.slice(join(dir, name).length + 1)}`
        for (const test of testFile.assertionResults ?? []) {
          if (test.status !== "failed") continue
          const first = (test.failureMessages ?? []).join("\n").split("\n").slice(0, 12)
          failures.push([`${where}: ${test.fullName}`, ...first.map((l) => `    ${l}`)])
        }
        // A file that fails before its tests run (an import error) has no assertion results.
        if (testFile.status === "failed" && (testFile.assertionResults ?? []).length === 0) {
          failures.push([`${where}: ${String(testFile.message ?? "failed").split("\n")[0]}`])
        }
      }
    }
  }
}
for (const line of perPackage) console.log(`  ${line}`)
for (const lines of failures) console.log(`FAILED ${lines.join("\n")}`)
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`)
if (passed + failed === 0) {
  console.error("no test ran")
  process.exit(1)
}
process.exit(failed > 0 ? 1 : 0)
