/**
 * A deploy's steps on the progress line (a terminal only): the vault call the deploy waits for,
 * in words. A wait can be long (a throttled vault's Retry-After, a recovery Key Vault takes
 * minutes to serve, a rollback's reads), and "deploying…" alone did not say which it was.
 */
import { ROLLBACK_OF_TAG, Vault } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import { step } from "./terminal.js"

/** The step each vault call stands for, once the deploy has (or has not yet) sent its import. */
const stepOf = {
  // Short, the point first: a line longer than the terminal is cut.
  snapshot: "reading the version served now",
  verify: "verifying that the new version is served",
  rollbackCheck: "rolling back: checking that no newer version came in meanwhile",
  rollbackList: "rolling back: listing the versions since the snapshot",
  rollbackVerify: "verifying that the restored version is served",
  rollbackOthers: "rolling back: listing the versions again",
  import: "importing the new version",
  rollbackImport: "rolling back: importing the previous certificate",
  versions: "reading the versions (to find what the import wrote)",
  version: "reading a version",
  secret: "rolling back: reading the previous version's PFX",
  deleted: "the name is soft-deleted: reading the deleted certificate",
  recover: "recovering the soft-deleted certificate (may take minutes)",
} as const

/** `vault` with each call preceded by its step on the progress line, prefixed with the certificate's name. */
export const withStepProgress = (vault: Vault["Service"], name: string): Vault["Service"] => {
  let imported = false
  let restoring = false
  // The rollback's import answered: the list that follows looks for another writer's import made
  // while it was in flight (after an answer lost, it looks for what the import wrote).
  let restored = false
  // After the import, a read of the previous version's PFX is the rollback's: its next read of the
  // latest, before its own import, checks that no other writer's version came in meanwhile.
  let rollingBack = false
  const say = <A, E>(which: keyof typeof stepOf, call: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    step(`${name}: ${stepOf[which]}`, call)
  return Vault.of({
    ...vault,
    getLatest: (n) =>
      say(
        restoring ? "rollbackVerify" : rollingBack ? "rollbackCheck" : imported ? "verify" : "snapshot",
        vault.getLatest(n),
      ),
    getVersion: (n, v) => say("version", vault.getVersion(n, v)),
    // Before the rollback's import the list looks for another writer's version; after an import, it
    // looks for what the import wrote.
    listVersions: (n) =>
      say(
        restored ? "rollbackOthers" : rollingBack && !restoring ? "rollbackList" : "versions",
        vault.listVersions(n),
      ),
    importVersion: (request) =>
      Effect.suspend(() => {
        restoring = request.tags[ROLLBACK_OF_TAG] !== undefined
        // What follows an import that may have written (its verify) is about it; a refused one (a
        // soft-deleted name's 409) wrote nothing, and the reads after it are not verifies.
        return say(restoring ? "rollbackImport" : "import", vault.importVersion(request)).pipe(
          Effect.tap(() =>
            Effect.sync(() => {
              imported = true
              if (restoring) restored = true
            }),
          ),
          Effect.tapError((e) =>
            Effect.sync(() => {
              if (e._tag === "VaultAmbiguous") imported = true
            }),
          ),
        )
      }),
    getVersionSecret: (n, v) =>
      say("secret", vault.getVersionSecret(n, v)).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            if (imported) rollingBack = true
          }),
        ),
      ),
    getDeleted: (n) => say("deleted", vault.getDeleted(n)),
    recoverDeleted: (n) => say("recover", vault.recoverDeleted(n)),
  })
}
