import { sharedModules } from "@kvdeploy/vitest-config"
import { defineConfig } from "vitest/config"

/**
 * Files that keep a module registry of their own (isolate: true): @azure/identity's credentials
 * keep what they learnt of an identity endpoint in module state (kv-emulator's identity-imds test
 * failed in a worker another identity file had used), and vaultFailure.test.ts sets HTTPS_PROXY,
 * which the SDK's pipeline may read once.
 */
const ownModules = [
  "test/crossTenant.test.ts",
  "test/tenantSpelling.test.ts",
  "test/vaultFailure.test.ts",
  "test/wire.test.ts",
]

// isolate: false for the rest: a worker imports the Azure SDKs, the emulator and the package's
// sources once for its files instead of once per file. Measured on the shared 2-core machine, the
// whole suite: 82 s wall, 55 s CPU -> 53 s wall, 39 s CPU, 222 tests passing.
export default defineConfig(sharedModules(ownModules))
