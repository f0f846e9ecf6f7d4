import { type SpawnSyncReturns, spawnSync } from "node:child_process"

/**
 * Run a Node.js script with this Node.js, made to report another version (`process.version`
 * and `process.versions.node`), as an older or newer runtime would: for tests of the binaries'
 * runtime check. Synchronous; 30 s at most.
 */
export const spawnAsNodeVersion = (
  version: string,
  script: string,
  args: ReadonlyArray<string>,
): SpawnSyncReturns<string> =>
  spawnSync(
    process.execPath,
    [
      "--import",
      `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"${version}"});Object.defineProperty(process,"version",{value:"v${version}"})`,
      script,
      ...args,
    ],
    { encoding: "utf8", timeout: 30_000 },
  )
