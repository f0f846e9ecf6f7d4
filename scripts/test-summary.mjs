// Sums the vitest JSON reports of every workspace package into one closing
// line, "tests: N passed, N failed, N skipped", and fails when no test ran.
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const root = new URL("..", import.meta.url).pathname
let passed = 0
let failed = 0
let skipped = 0
const perPackage = []
for (const group of ["packages", "apps", "tooling"]) {
  const dir = join(root, group)
  if (!existsSync(dir)) continue
  for (const name of readdirSync(dir)) {
    const file = join(dir, name, ".vitest-results.json")
    if (!existsSync(file)) continue
    const r = JSON.parse(readFileSync(file, "utf8"))
    passed += r.numPassedTests
    failed += r.numFailedTests
    skipped += r.numPendingTests + (r.numTodoTests ?? 0)
    perPackage.push(`${group}/${name}: ${r.numPassedTests} passed, ${r.numFailedTests} failed`)
  }
}
for (const line of perPackage) console.log(`  ${line}`)
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`)
if (passed + failed === 0) {
  console.error("no test ran")
  process.exit(1)
}
process.exit(failed > 0 ? 1 : 0)
