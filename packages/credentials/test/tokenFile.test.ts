/**
 * The federated token file of workload identity (and of managed identity's AKS token exchange)
 * that can be opened and holds no token: empty, blank, a directory, too large to be a token. Each
 * is named, with its file and its fix, when the credential is made, by the input check
 * (`checkFiles`) and by `doctor`, against the emulator's Entra ID, before any token request;
 * never with the file's content. The unreadable case keeps its wording.
 */
import { mkdirSync, truncateSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { validateTargetConfigSync } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import {
  type CredentialMode,
  type CredentialSettings,
  credentialEnvironmentProblems,
  credentialSettingsFromTarget,
  diagnoseCredential,
  formatDiagnosis,
  makeCredential,
} from "../src/index.js"
import { emulatorWithDirectory, withEnvironment } from "./identityEnvironment.js"

const world = emulatorWithDirectory("creds", "kvdeploy-token-file-")

/** Text that must never appear in a message: it stands for the token the file holds. */
const marker = "eyJkvdeploy-token-content-marker"

/** A file of `bytes` bytes of the marker, repeated. */
const markedFile = (name: string, bytes: number): string => {
  const path = join(world.dir, name)
  writeFileSync(path, marker.repeat(Math.ceil(bytes / marker.length)).slice(0, bytes))
  return path
}

const fileCases = {
  empty: () => {
    const path = join(world.dir, "empty")
    writeFileSync(path, "")
    return path
  },
  blank: () => {
    const path = join(world.dir, "blank")
    writeFileSync(path, " \n\t\r\n")
    return path
  },
  directory: () => {
    // The projected volume's directory, given in place of its file (with a file of its own).
    const path = join(world.dir, "tokens")
    mkdirSync(path, { recursive: true })
    writeFileSync(join(path, marker), marker)
    return path
  },
  huge: () => {
    // 50 MB (sparse): named by its size, never read.
    const path = join(world.dir, "huge")
    writeFileSync(path, marker)
    truncateSync(path, 50 * 1024 * 1024)
    return path
  },
  justOverTheBound: () => markedFile("over", 64 * 1024 + 1),
}

/** What each case must say: its problem, and words of its fix. */
const expected: Record<
  keyof typeof fileCases,
  { readonly says: string; readonly fix: ReadonlyArray<string> }
> = {
  empty: {
    says: "(AZURE_FEDERATED_TOKEN_FILE) is empty",
    fix: [
      "The kubelet writes the service account token there",
      "projected service account token volume",
      "service account is annotated for workload identity",
    ],
  },
  blank: {
    says: "(AZURE_FEDERATED_TOKEN_FILE) is empty (only spaces or line breaks, 5 bytes)",
    fix: [
      "The kubelet writes the service account token there",
      "service account is annotated for workload identity",
    ],
  },
  directory: {
    says: "(AZURE_FEDERATED_TOKEN_FILE) is a directory, not a file",
    fix: [
      "the token's file in the projected service account token volume",
      "/var/run/secrets/azure/tokens/azure-identity-token",
    ],
  },
  huge: {
    says: "(AZURE_FEDERATED_TOKEN_FILE) is too large to be a service account token (50 MiB; a token is a JWT of a few KB, and kvdeploy reads at most 64 KiB)",
    fix: ["the token's file in the projected service account token volume", "this file is something else"],
  },
  justOverTheBound: {
    says: "(AZURE_FEDERATED_TOKEN_FILE) is too large to be a service account token (64 KiB;",
    fix: ["the token's file in the projected service account token volume"],
  },
}

const settingsFor = (mode: CredentialMode): CredentialSettings => {
  const result = validateTargetConfigSync(world.emulator.targetConfig("creds", "web", "workloadIdentity"))
  if (Result.isFailure(result)) throw new Error(result.failure.message)
  return { ...credentialSettingsFromTarget(result.success, { trustedCaPem: world.emulator.caPem }), mode }
}

/** The emulator's workload identity environment, with `tokenFile` as the federated token file. */
const podEnvironment = (tokenFile: string): Record<string, string> => ({
  ...world.emulator.env.workloadIdentity,
  AZURE_FEDERATED_TOKEN_FILE: tokenFile,
})

/** The reason and fix name the file and the problem, and show nothing of its content. */
const expectNamed = (
  text: { readonly reason: string; readonly fix: string },
  path: string,
  what: (typeof expected)[keyof typeof fileCases],
) => {
  expect(text.reason).toContain(`the federated token file ${path} ${what.says}`)
  for (const words of what.fix) expect(text.fix).toContain(words)
  expect(`${text.reason} ${text.fix}`).not.toContain(marker)
}

describe("a federated token file that holds no token is named when the credential is made", () => {
  for (const [name, make] of Object.entries(fileCases) as Array<[keyof typeof fileCases, () => string]>) {
    describe(name, () => {
      let path: string
      beforeAll(() => {
        path = make()
      })

      it.live(
        "workload_identity: makeCredential fails with CredentialUnavailable, before any token request",
        () =>
          Effect.gen(function* () {
            const mark = world.emulator.requests.mark()
            const error = yield* withEnvironment(
              podEnvironment(path),
              makeCredential(settingsFor("workload_identity")).pipe(Effect.flip),
            )
            expect(error._tag).toBe("CredentialUnavailable")
            expectNamed(error, path, expected[name])
            expect(error.message).not.toContain(marker)
            // Nothing was asked of the emulator's Entra ID.
            expect(world.emulator.requests.count({ since: mark })).toBe(0)
          }),
      )

      it.live("managed_identity's AKS token exchange: the same", () =>
        Effect.gen(function* () {
          const error = yield* withEnvironment(
            podEnvironment(path),
            makeCredential(settingsFor("managed_identity")).pipe(Effect.flip),
          )
          expect(error._tag).toBe("CredentialUnavailable")
          expectNamed(error, path, expected[name])
        }),
      )

      it("the input check (checkFiles: the CLI's, the agent's --check) names it as the variable's problem", () => {
        const env = podEnvironment(path)
        const problems = credentialEnvironmentProblems("workload_identity", (n) => env[n], {
          checkFiles: true,
        })
        expect(problems).toHaveLength(1)
        expect(problems[0]).toMatchObject({ kind: "malformed", variables: ["AZURE_FEDERATED_TOKEN_FILE"] })
        expectNamed(problems[0] ?? { reason: "", fix: "" }, path, expected[name])
      })

      it.live("doctor (diagnoseCredential) names it as the credential's problem", () =>
        Effect.gen(function* () {
          const d = yield* withEnvironment(
            podEnvironment(path),
            diagnoseCredential(settingsFor("workload_identity")),
          )
          expect(d.ok).toBe(false)
          const credential = d.checks.find((c) => c.name === "credential")
          expect(credential?.status).toBe("missing")
          expectNamed({ reason: credential?.detail ?? "", fix: credential?.fix ?? "" }, path, expected[name])
          expect(d.checks.find((c) => c.name === "token")).toBeUndefined()
          expect(`${formatDiagnosis(d).join("\n")}${JSON.stringify(d)}`).not.toContain(marker)
        }),
      )
    })
  }

  // The default chain's own check (the chain itself may take another source, so the credential is
  // made). The 50 MB file is left out here: DefaultAzureCredential would send it when asked.
  for (const name of ["empty", "blank", "directory", "justOverTheBound"] as const)
    it.live(
      `default: doctor's workload identity source check names a file that is ${name}`,
      () =>
        Effect.gen(function* () {
          const path = fileCases[name]()
          const d = yield* withEnvironment(
            { ...podEnvironment(path), ...world.emulator.env.managedIdentityImds },
            diagnoseCredential(settingsFor("default")),
          )
          const check = d.checks.find((c) => c.name === "default: 2 workload identity")
          expect(check?.status).toBe("failed")
          expectNamed({ reason: check?.detail ?? "", fix: check?.fix ?? "" }, path, expected[name])
          expect(`${formatDiagnosis(d).join("\n")}${JSON.stringify(d)}`).not.toContain(marker)
        }),
      60_000,
    )
})

describe("what still passes, and the unreadable file's wording", () => {
  it.live("a token of a few KB, with the line break a file ends with, is taken and gets a token", () =>
    Effect.gen(function* () {
      // The emulator's own federated token file, a real JWT.
      const d = yield* withEnvironment(
        podEnvironment(world.emulator.workloadIdentity.tokenFile),
        diagnoseCredential(settingsFor("workload_identity")),
      )
      expect(d.ok).toBe(true)
      const env = podEnvironment(markedFile("few-kb", 4096))
      expect(credentialEnvironmentProblems("workload_identity", (n) => env[n], { checkFiles: true })).toEqual(
        [],
      )
      const atTheBound = podEnvironment(markedFile("at-bound", 64 * 1024))
      expect(
        credentialEnvironmentProblems("workload_identity", (n) => atTheBound[n], { checkFiles: true }),
      ).toEqual([])
    }),
  )

  it.live("a file that does not exist: cannot be read, as before", () =>
    Effect.gen(function* () {
      const path = join(world.dir, "does-not-exist")
      const error = yield* withEnvironment(
        podEnvironment(path),
        makeCredential(settingsFor("workload_identity")).pipe(Effect.flip),
      )
      expect(error._tag).toBe("CredentialUnavailable")
      expect(error.reason).toBe(
        `the federated token file ${path} (AZURE_FEDERATED_TOKEN_FILE) cannot be read`,
      )
      expect(error.fix).toBe(
        "Check the projected service account token volume is mounted and readable by this user",
      )
      const env = podEnvironment(path)
      expect(credentialEnvironmentProblems("workload_identity", (n) => env[n], { checkFiles: true })).toEqual(
        [
          expect.objectContaining({
            reason: `the federated token file ${path} (AZURE_FEDERATED_TOKEN_FILE) cannot be read: no such file or directory (ENOENT)`,
            fix: expect.stringMatching(/^Check that the projected service account token is mounted there/),
          }),
        ],
      )
    }),
  )
})
