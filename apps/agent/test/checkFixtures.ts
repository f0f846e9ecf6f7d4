/**
 * What the `--check` test files (check.test.ts, check-more.test.ts: one file was the agent suite's
 * longest) share: the example configuration and its environment, the agent run with --check, and
 * scratch directories with certificates made by OpenSSL.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inject } from "vitest"
import { agentRoot, bin } from "./harness.js"

export const example = join(agentRoot, "examples", "agent.yaml")
/** The variables the example's deployments need: its PFX password, and workload identity's. */
/**
 * The projected service account token the workload identity webhook mounts (a file --check reads):
 * made by the global setup (test/build.ts) for the whole run and removed after it. A worker runs
 * several files (isolate: false) and imports this module once for all of them: a file made here and
 * removed after the first file's tests was gone for the next ones.
 */
export const tokenFile = inject("checkTokenFile")

export const exampleEnv = {
  PORTAL_PFX_PASSWORD: "x",
  AZURE_TENANT_ID: "00000000-0000-0000-0000-000000000001",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000002",
  AZURE_FEDERATED_TOKEN_FILE: tokenFile,
}

export const agent = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    timeout: 30_000,
    maxBuffer: 64 * 1024 * 1024,
    // NODE_COMPILE_CACHE: Node's compile cache of the bundle (vitest.config.ts), nothing the agent reads.
    env: {
      PATH: process.env.PATH ?? "",
      ...(process.env.NODE_COMPILE_CACHE === undefined
        ? {}
        : { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE }),
      ...env,
    },
  })

/** Run `f` in a scratch directory of its own, removed afterwards. */
export const inScratch = (f: (dir: string) => void): void => {
  const dir = mkdtempSync(join(tmpdir(), "kvdeploy-check-"))
  try {
    f(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A configuration of one workload_identity deployment in `dir` (its source not there yet). */
export const workloadConfig = (dir: string): string => {
  const config = join(dir, "workload.yaml")
  writeFileSync(
    config,
    `deployments:
  - { name: a, source: { cert: ${join(dir, "later.crt")} }, target: { vault_url: "https://kv-prod.vault.azure.net", certificate_name: a, credential_mode: workload_identity } }
`,
  )
  return config
}
/** The tenant and client workload identity needs beside its token file. */
export const workloadIds = {
  AZURE_TENANT_ID: "00000000-0000-0000-0000-0000000000a0",
  AZURE_CLIENT_ID: "00000000-0000-0000-0000-0000000000a1",
}

/** Runs openssl in `dir`, failing the test with its error output. */
export const opensslIn = (dir: string) => (args: ReadonlyArray<string>) => {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" })
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`)
}

/** A self-signed EC P-256 certificate `NAME.crt` for CN=NAME.example.test and its key `NAME.key`, in `dir`. */
export const selfSigned = (dir: string, name: string) =>
  opensslIn(dir)(
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"].concat([
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-subj",
      `/CN=${name}.example.test`,
      "-days",
      "30",
    ]),
  )

/** `NAME.pfx` of `NAME.crt` and `NAME.key` in `dir`, under `password`. */
export const exportPfx = (dir: string, name: string, password: string) =>
  opensslIn(dir)(
    ["pkcs12", "-export", "-in", `${name}.crt`, "-inkey", `${name}.key`, "-out", `${name}.pfx`].concat([
      "-passout",
      `pass:${password}`,
    ]),
  )
