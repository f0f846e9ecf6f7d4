import { sharedModules } from "@kvdeploy/vitest-config"
import { defineConfig } from "vitest/config"

/**
 * Files that need a fresh module registry (isolate: true): @azure/identity keeps what it learnt of
 * a managed identity endpoint (the IMDS probe, MSAL's clients) in module state, so a worker that
 * ran another identity file first answered identity-imds.test.ts from the other file's emulator.
 */
const ownModules = ["test/identity-*.test.ts"]

// isolate: false for the rest: a worker imports the emulator, the SDKs and the PKI code once for
// its files instead of once per file. Measured on the shared 2-core machine, the whole suite:
// 113 s wall, 61 s CPU with every file isolated -> 81 s wall, 50 s CPU, 198 tests passing.
export default defineConfig(sharedModules(ownModules))
