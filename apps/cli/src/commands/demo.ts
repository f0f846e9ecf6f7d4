/**
 * `kvdeploy demo`: the main job, end to end, on the embedded default. It
 * starts the Key Vault emulator in this process, makes a throwaway CA and
 * certificates in memory, then runs the real deploy program through the real
 * Azure SDK adapter: v1, v2, an unchanged deploy (skipped), a deploy whose
 * verify fails (rolled back), the version history and the metrics recorded.
 */
import {
  type DeployOutcome,
  exitCodeOf,
  deploy as runDeploy,
  type TargetConfig,
  Vault,
  validateTargetConfigSync,
} from "@kvdeploy/core"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Command from "effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as flags from "../cli/flags.js"
import { newVersionOf } from "../cli/outcome.js"
import { ExitCode, ExitWith, failure } from "../cli/problems.js"
import { printJson, printLine, printLines, progress, styleOut } from "../cli/terminal.js"
import { credentialFor, deployServices } from "../cli/vault.js"
import { newestFirst, versionLines, versionRecord } from "../cli/versions.js"

const certificateName = "api-example"
const short = (id: string | undefined) => (id === undefined ? "-" : id.slice(0, 12))

export const demo = Command.make("demo", { json: flags.json }, ({ json }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const s = styleOut()
      const started = Date.now()
      const say = (line = "") => (json ? Effect.void : printLine(line))
      yield* progress("starting the Key Vault emulator…")
      const kv = yield* Effect.promise(() => import("@kvdeploy/kv-emulator"))
      const prometheus = yield* Effect.promise(() => import("@kvdeploy/metrics/prometheus"))
      const emulator = yield* kv
        .startScoped({ vaults: ["kvdeploy-demo"], warn: () => {} })
        .pipe(
          Effect.mapError((e) =>
            failure("the emulator could not start", [
              { field: "emulator", message: e.message, fix: "retry; check loopback ports are free" },
            ]),
          ),
        )
      const validated = validateTargetConfigSync({
        ...emulator.targetConfig("kvdeploy-demo", certificateName, "clientSecret"),
        tags: { env: "demo", owner: "platform-team" },
      })
      if (Result.isFailure(validated)) {
        return yield* failure("the emulator's target configuration is invalid", validated.failure.problems)
      }
      const target: TargetConfig = validated.success
      yield* say(
        `${s.bold("kvdeploy demo")}  Key Vault emulator at ${target.vaultUrl} (vault kvdeploy-demo, Entra ID at ${emulator.authorityHost})`,
      )
      yield* progress("making a throwaway CA and certificates…")
      const { makePki } = yield* Effect.promise(() => import("../cli/throwawayPki.js"))
      const pki = yield* Effect.promise(() => makePki("kvdeploy demo"))
      const v1 = yield* Effect.promise(() =>
        pki.leaf("CN=api.example.test", { dnsNames: ["api.example.test"] }),
      )
      const v2 = yield* Effect.promise(() =>
        pki.leaf("CN=api.example.test", { dnsNames: ["api.example.test", "www.example.test"] }),
      )
      const v3 = yield* Effect.promise(() =>
        pki.leaf("CN=api.example.test", { dnsNames: ["api.example.test"], notAfterDays: 180 }),
      )
      yield* say(
        `  throwaway CA   ${pki.root.certificate.subject} -> ${pki.intermediate.certificate.subject} (in memory, nothing on disk)`,
      )
      yield* say(
        `  target         ${certificateName}, tags env=demo owner=platform-team, credential_mode client_secret`,
      )
      yield* say()

      const metricsLayer = prometheus.layer
      const metrics = yield* Layer.build(metricsLayer)
      const configProvider = ConfigProvider.layer(
        ConfigProvider.fromEnvRecord({ ...emulator.env.clientSecret }),
      )
      const { credential } = yield* credentialFor(target, emulator.caPem).pipe(Effect.provide(configProvider))
      const services = yield* deployServices(target, {
        metrics: Layer.succeedContext(metrics),
        trustedCaPem: emulator.caPem,
        credential,
      })

      const materialOf = (leaf: typeof v1) => ({
        leaf: new Uint8Array(leaf.certificate.rawData),
        chain: [
          new Uint8Array(pki.root.certificate.rawData),
          new Uint8Array(pki.intermediate.certificate.rawData),
        ],
        key: Redacted.make(leaf.pkcs8),
      })
      const outcomes: Array<{ step: string; expected: DeployOutcome["_tag"]; outcome: DeployOutcome }> = []
      const step = (
        n: number,
        title: string,
        leaf: typeof v1,
        expected: DeployOutcome["_tag"],
        /** Another actor, running while the deploy runs. */
        meanwhile?: Effect.Effect<void>,
      ) =>
        Effect.gen(function* () {
          yield* progress(`${n}. ${title}…`)
          const deploying = runDeploy({
            target,
            material: materialOf(leaf),
            certificateId: "api-example-demo",
          }).pipe(Effect.provide(services))
          const [outcome] = yield* Effect.all([deploying, meanwhile ?? Effect.void], {
            concurrency: "unbounded",
          })
          outcomes.push({ step: title, expected, outcome })
          const ok = outcome._tag === expected
          const tag = ok
            ? expected === "RolledBack"
              ? s.yellow(outcome._tag)
              : s.green(outcome._tag)
            : s.red(`${outcome._tag} (expected ${expected})`)
          const secs = (outcome.timings.durationMs / 1000).toFixed(2)
          yield* say(`${s.bold(`${n}. ${title}`)}`)
          yield* say(
            `   ${tag}  exit ${exitCodeOf(outcome)}  ${secs} s  ${outcome.vaultCalls} vault call${outcome.vaultCalls === 1 ? "" : "s"}`,
          )
          yield* say(
            `   old ${short(outcome.previous?.versionId)}  new ${short(newVersionOf(outcome))}  x5t ${outcome.newX5t ?? "-"}`,
          )
          if (outcome._tag === "RolledBack") {
            yield* say(
              `   verify failed (${outcome.reason}); rollback ${short(outcome.rollbackVersionId)} restores ${short(outcome.previous?.versionId)} from the ${outcome.rollbackSource}`,
            )
          } else {
            yield* say(`   ${outcome.reason}`)
          }
          yield* say(`   ${s.dim(outcome.decisions.join(" → "))}`)
          yield* say()
        })
      yield* step(1, "deploy v1 (first deploy)", v1, "Succeeded")
      yield* step(2, "deploy v2 (renewal)", v2, "Succeeded")
      yield* step(3, "deploy v2 again (unchanged)", v2, "Skipped")
      // Step 4's verify failure, injected into the emulator: the verify read (the deploy's second
      // getLatest) is delayed, and meanwhile another actor disables the version the deploy just imported.
      const faultId = emulator.faults.add({
        operation: "getLatest",
        vault: "kvdeploy-demo",
        name: certificateName,
        skip: 1,
        times: 1,
        action: { kind: "delay", ms: 1500 },
      })
      const mark = emulator.requests.mark()
      const { CertificateClient } = yield* Effect.promise(() => import("@azure/keyvault-certificates"))
      const otherActor = new CertificateClient(target.vaultUrl, credential, {
        disableChallengeResourceVerification: true,
        tlsOptions: { ca: emulator.caPem },
      })
      const disableNewVersion = Effect.gen(function* () {
        while (
          emulator.requests.count({
            since: mark,
            vault: "kvdeploy-demo",
            operation: "import",
            status: 200,
          }) === 0
        ) {
          yield* Effect.sleep("20 millis")
        }
        const version = emulator.state.versions("kvdeploy-demo", certificateName)?.at(-1)?.version ?? ""
        yield* Effect.promise(() =>
          otherActor.updateCertificateProperties(certificateName, version, { enabled: false }),
        )
      }).pipe(Effect.timeout("30 seconds"), Effect.ignore)
      yield* step(
        4,
        "deploy v3 while another actor disables it (injected verify failure)",
        v3,
        "RolledBack",
        disableNewVersion,
      )
      emulator.faults.remove(faultId)

      yield* progress("reading the version history…")
      const [history, latest] = yield* Effect.gen(function* () {
        const vault = yield* Vault
        return yield* Effect.all([vault.listVersions(certificateName), vault.getLatest(certificateName)])
      }).pipe(
        Effect.provide(services),
        Effect.mapError((e) => failure(`could not read the version history: ${e.message}`, [])),
      )
      // The order the demo wrote its versions in: its steps' new versions, and the rollback's.
      const createdOrder = outcomes.flatMap(({ outcome }) => [
        ...(outcome._tag === "Skipped" ? [] : [newVersionOf(outcome)]),
        ...(outcome._tag === "RolledBack" ? [outcome.rollbackVersionId] : []),
      ])
      const records = newestFirst(
        history,
        latest.versionId,
        createdOrder.filter((id): id is string => id !== undefined),
      ).map((v) => versionRecord(v, v.versionId === latest.versionId))
      const exposition = yield* Effect.gen(function* () {
        const p = yield* prometheus.PrometheusExposition
        return yield* p.text
      }).pipe(Effect.provideContext(metrics))
      const writes = emulator.requests.count({ vault: "kvdeploy-demo", operation: "import" })
      const ok = outcomes.every((o) => o.outcome._tag === o.expected)
      if (json) {
        yield* printJson({
          ok,
          vaultUrl: target.vaultUrl,
          certificateName,
          steps: outcomes.map((o) => ({ step: o.step, expected: o.expected, outcome: o.outcome })),
          versions: records,
          importRequests: writes,
          metrics: exposition,
        })
      } else {
        yield* printLines([
          s.bold(
            `5. version history of ${certificateName}, newest first (${records.length} versions; ${writes} import requests reached the vault)`,
          ),
          ...versionLines(records, s, Date.now()).map((l) => `  ${l}`),
          "",
          s.bold("6. metrics recorded (Prometheus text, kvdeploy and certctl series with samples)"),
          ...exposition
            .split("\n")
            .filter(
              (l) => l !== "" && !l.startsWith("#") && !/_bucket\{/.test(l) && / [1-9][0-9.e+-]*$/.test(l),
            )
            .map((l) => `  ${l}`),
          "",
          ok
            ? s.green(
                `demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s: deploy, skip and rollback behaved as designed`,
              )
            : s.red("demo finished, but an outcome was not the expected one (see above)"),
        ])
      }
      if (!ok) return yield* new ExitWith({ exitCode: ExitCode.failed })
    }),
  ),
).pipe(
  Command.withDescription(
    "Show kvdeploy's whole job against the Key Vault emulator it embeds, in a few seconds: start the Key Vault + Entra ID emulator in this process, make a throwaway CA and certificates in memory, deploy v1, deploy v2, deploy v2 again (skipped: nothing written), deploy v3 while another actor disables the new version between import and verify (an injected fault delays the verify read): rolled back to v2, tagged certctl-rollback-of, then print the version history and the metrics recorded (Prometheus text). The deploys go through the real Azure SDKs over HTTPS. Exit 0 when every outcome is the expected one.",
  ),
  Command.withShortDescription("Deploy, skip and rollback against the embedded emulator"),
  Command.withExamples([
    { command: "kvdeploy demo", description: "Watch it" },
    {
      command: "kvdeploy demo --json",
      description: "Every outcome record, the version history and the metrics as JSON",
    },
  ]),
)
