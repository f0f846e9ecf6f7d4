/**
 * A deploy's steps on the progress line (a terminal only): the vault call the deploy waits for,
 * in words. A wait can be long (a throttled vault's Retry-After, a recovery Key Vault takes
 * minutes to serve, a rollback's reads), and "deploying…" alone did not say which it was.
 */
import { ROLLBACK_OF_TAG, Vault } from "@kvdeploy/core"
import * as Effect from "effect/Effect"
import { progress } from "./terminal.js"

/** The step each vault call stands for, once the deploy has (or has not yet) sent its import. */
const stepOf = {
  // Short, the point first: a line longer than the terminal is cut.
  snapshot: "reading the version served now",
  verify: "verifying that the new version is served",
  rollbackVerify: "verifying that the restored version is served",
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
  const say = <A, E>(step: keyof typeof stepOf, call: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.andThen(progress(`${name}: ${stepOf[step]}…`), call)
  return Vault.of({
    ...vault,
    getLatest: (n) =>
      say(restoring ? "rollbackVerify" : imported ? "verify" : "snapshot", vault.getLatest(n)),
    getVersion: (n, v) => say("version", vault.getVersion(n, v)),
    listVersions: (n) => say("versions", vault.listVersions(n)),
    importVersion: (request) =>
      Effect.suspend(() => {
        // What follows an import (its verify, or the search for a lost answer) is about it.
        imported = true
        restoring = request.tags[ROLLBACK_OF_TAG] !== undefined
        return say(restoring ? "rollbackImport" : "import", vault.importVersion(request))
      }),
    getVersionSecret: (n, v) => say("secret", vault.getVersionSecret(n, v)),
    getDeleted: (n) => say("deleted", vault.getDeleted(n)),
    recoverDeleted: (n) => say("recover", vault.recoverDeleted(n)),
  })
}
