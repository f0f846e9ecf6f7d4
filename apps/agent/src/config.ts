/**
 * The agent's configuration: one YAML file, described by an Effect Schema
 * (the published JSON Schema, schema/agent-config.schema.json, is generated
 * from it) and checked further with core's target validation. Loading reports
 * every problem at once, each with the field it concerns and the fix.
 */
import { execFile, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { closeSync, constants, createReadStream, existsSync, fstatSync, openSync } from "node:fs"
import { isIP } from "node:net"
import { dirname, resolve as resolvePath } from "node:path"
import { domainToASCII } from "node:url"
import * as NodeStream from "@effect/platform-node/NodeStream"
import {
  type ConfigProblem,
  Consumer,
  certificateIdProblems,
  didYouMean,
  environmentVariable,
  fsCodeInWords,
  holdsEncodedBase64,
  keyInField,
  looksLikeDerBase64,
  quotedValue,
  readAtMost,
  shownSecretVariable,
  type TargetConfig,
  validateTargetConfigSync,
  withoutKeyText,
} from "@kvdeploy/core"
import {
  type CredentialMode,
  credentialEnvironmentProblems,
  credentialModes,
  missingVariablesInWords,
} from "@kvdeploy/credentials"
import { knownIdentitySecrets } from "@kvdeploy/credentials/tokenErrors"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as SchemaIssue from "effect/SchemaIssue"
import { CORE_SCHEMA, loadAll, mergeTag, YAMLException } from "js-yaml"
import { type ConfigPathOrigin, unreadableConfigFix } from "./configPath.js"

/**
 * Whether a path the configuration gives holds certificate or key text instead: PEM markers or a
 * line break, or the base64 of a key's DER (from the "M" of its SEQUENCE, whole or cut short at its
 * end) when no file has that name (`resolved`: the path as the agent would open it). Such a path is
 * never shown, logged or made.
 */
export const pathHoldsText = (value: string, resolved: (path: string) => string): boolean =>
  /-----BEGIN |PRIVATE KEY-----|[\r\n]/.test(value) ||
  (looksLikeDerBase64(value) && !existsSync(resolved(value)))

/** The most material workers a configuration may ask for. */
export const maxMaterialWorkers = 64

/**
 * Material workers by default: none (opt-in). Measured on a 2-core host, a worker made a cold
 * pass no shorter and cost the agent about 13% more CPU per deploy; see docs/agent.md.
 */
export const defaultMaterialWorkers = 0

const positiveInt = (description: string) =>
  Schema.Finite.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1)).annotate({ description })
const positiveNumber = (description: string) =>
  Schema.Finite.check(Schema.isGreaterThan(0)).annotate({ description })

/** `source.owner`: one more user whose files pass the agent's check of who may write them (pathTrust.ts). */
const SourceOwnerSchema = Schema.Union([
  // A name, or a uid written as text (`owner: "65534"`: quoted, as YAML lets one write any value).
  Schema.String.check(Schema.isPattern(/^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10})$/u)),
  Schema.Finite.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)),
]).annotate({
  description:
    "The user (a name, or a uid: a number, quoted or not) that writes these files, when neither root nor the agent's user: an ACME client that runs as its own user. Its files, directories and links are trusted as root's; a file reached through one of its directories or links must be its own",
})

export const PemSourceSchema = Schema.Struct({
  cert: Schema.String.annotate({
    description: "PEM file holding the leaf certificate (may also hold the chain and the key)",
  }),
  chain: Schema.optionalKey(
    Schema.String.annotate({ description: "PEM file holding the intermediate certificates" }),
  ),
  key: Schema.optionalKey(
    Schema.String.annotate({ description: "PEM file holding the unencrypted private key" }),
  ),
  owner: Schema.optionalKey(SourceOwnerSchema),
}).annotate({ title: "PEM source" })

export const PfxSourceSchema = Schema.Struct({
  pfx: Schema.String.annotate({ description: "PKCS#12 file" }),
  pfx_password_env: Schema.optionalKey(
    Schema.String.check(Schema.isPattern(/^[A-Za-z_][A-Za-z0-9_]*$/u)).annotate({
      description: "Name of the environment variable that holds the PFX password (never the password itself)",
    }),
  ),
  owner: Schema.optionalKey(SourceOwnerSchema),
}).annotate({ title: "PFX source" })

export const CloudSchema = Schema.Struct({
  name: Schema.optionalKey(
    Schema.String.annotate({
      description:
        "A known cloud's name (AzurePublicCloud, AzureUSGovernment, AzureChinaCloud; also AzureCloud, AzurePublic, AzureGovernment, AzureUSGovernmentCloud, AzureChina; exact case): alone it selects that cloud, which must be vault_url's; with the endpoints they must be its. Any other name is only a label, and needs the three endpoints",
    }),
  ),
  vault_dns_suffix: Schema.optionalKey(
    Schema.String.annotate({
      description:
        "DNS suffix of the custom cloud's vault hosts (vault.local.azurestack.external); vault_url must end with it",
    }),
  ),
  authority_host: Schema.optionalKey(
    Schema.String.annotate({
      description:
        "https origin of the custom cloud's Entra ID; a known cloud's (or an alias such as https://login.windows.net) must be the same cloud's as the other fields",
    }),
  ),
  keyvault_resource: Schema.optionalKey(
    Schema.String.annotate({
      description:
        "https origin tokens are asked for (the custom cloud's Key Vault resource); a known cloud's must be the same cloud's as the other fields",
    }),
  ),
}).annotate({
  description:
    "A custom cloud (Azure Stack Hub, a private deployment, the emulator): vault_dns_suffix, authority_host and keyvault_resource, all three, of one cloud (a mix of the public, US Government and China clouds' endpoints is refused; three that are one known cloud's, an alias authority host included, select that known cloud, with instance discovery and the challenge resource check on, as vault_url's suffix would); or a known cloud's name alone, which must be vault_url's cloud. Leave it out for a vault in a known cloud: vault_url's suffix selects it",
})

export const TargetSchema = Schema.Struct({
  vault_url: Schema.String.annotate({
    description: "https://<vault>.vault.azure.net (or the US Government / China / custom cloud suffix)",
  }),
  certificate_name: Schema.String.annotate({
    description: "Key Vault certificate name: 1-127 of A-Z a-z 0-9 -",
  }),
  tags: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)),
  credential_mode: Schema.optionalKey(
    Schema.Literals(["default", "managed_identity", "client_secret", "workload_identity"]),
  ),
  managed_identity_client_id: Schema.optionalKey(Schema.String),
  on_soft_deleted: Schema.optionalKey(Schema.Literals(["fail", "recover"])),
  pfx_encoding: Schema.optionalKey(Schema.Literals(["modern", "legacy"])),
  content_type: Schema.optionalKey(
    Schema.Literals(["keep", "pkcs12", "pem"]).annotate({
      description:
        "Content type of the certificate's secret an import writes: keep (default: what the vault serves now, PKCS#12 for a new certificate), pkcs12, or pem (leaf, chain and PKCS#8 key as PEM text, for consumers such as a Secrets Store CSI mount or nginx that read the secret as PEM)",
    }),
  ),
  consumers: Schema.optionalKey(
    Schema.Array(Consumer).annotate({
      description:
        "The services that read this certificate from the vault: front_door, application_gateway, app_service (each once; default none). A deploy refuses a certificate one of them would not take before writing anything, and warns where its documentation is weaker; content_type keep imports PKCS#12 for them (pem is refused). An AKS Secrets Store CSI mount reads PKCS#12 and PEM alike: it needs no entry",
    }),
  ),
  cloud: Schema.optionalKey(CloudSchema),
  certificate_id: Schema.optionalKey(
    Schema.String.annotate({
      description: "Your id for the certificate (certctl-certificate-id tag); default: the deployment name",
    }),
  ),
  adopt: Schema.optionalKey(
    Schema.Boolean.annotate({
      description: "Take over a certificate that exists without certctl-managed-by=certctl",
    }),
  ),
}).annotate({ title: "Target (the certctl Azure Key Vault fields plus certificate_id and adopt)" })

export const PickupSchema = Schema.Struct({
  host: Schema.String.annotate({ description: "TLS endpoint expected to serve the deployed certificate" }),
  port: Schema.optionalKey(
    Schema.Finite.check(
      Schema.isInt(),
      Schema.isGreaterThanOrEqualTo(1),
      Schema.isLessThanOrEqualTo(65535),
    ).annotate({
      description: "TCP port (default 443)",
    }),
  ),
  servername: Schema.optionalKey(Schema.String.annotate({ description: "SNI name (default: host)" })),
}).annotate({ title: "Consumer pickup check" })

/** A deployment's name as the schema takes it (and as messages may quote it). */
const deploymentNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/u
/** deploymentNamePattern in words (the fix for a name it refuses). */
const deploymentNameRule =
  "1 to 128 characters: letters, digits, '.', '_' and '-', the first a letter or digit"

/** What in a (non-empty) name deploymentNamePattern refuses: its length, its first character, or the characters it does not take. */
const deploymentNameFault = (name: string): string => {
  const shown = (c: string) =>
    c === " " ? "a space" : c === "\t" ? "a tab" : JSON.stringify(c).replace(/^"|"$/g, "'")
  if (name.length > 128) return `is ${name.length} characters long: at most 128`
  const refused = [...new Set([...name].filter((c) => !/[A-Za-z0-9._-]/.test(c)))]
  if (refused.length > 0)
    return `holds ${refused.map(shown).join(", ")}, which a deployment name does not take`
  return `starts with ${shown(name.charAt(0))}: the first character is a letter or digit`
}

export const DeploymentSchema = Schema.Struct({
  name: Schema.String.check(Schema.isPattern(deploymentNamePattern)).annotate({
    description: "Unique deployment name (letters, digits, . _ -), used in logs, metrics and the state file",
  }),
  source: Schema.Union([PemSourceSchema, PfxSourceSchema]),
  target: TargetSchema,
  pickup: Schema.optionalKey(PickupSchema),
})

/**
 * The longest request timeout, in seconds: Node's timers hold at most 2^31-1 ms, and a longer one
 * fires at once (the agent's token requests would all time out).
 */
export const maxRequestTimeoutSeconds = 2_147_483

/**
 * Settings in seconds with a bound only a mistake crosses (docs/agent.md, `agent`): a number outside
 * it is reported with why and the fix instead of the schema's words.
 */
const secondsBounds: Readonly<
  Record<
    "reconcile_interval_seconds" | "request_timeout_seconds" | "backoff_base_seconds" | "backoff_max_seconds",
    {
      readonly min: number
      readonly tooSmall: string
      readonly max?: { readonly value: number; readonly tooLarge: string }
      readonly fix: string
    }
  >
> = {
  reconcile_interval_seconds: {
    min: 1,
    tooSmall:
      "a full pass reads every deployment from its vault, and passes less than a second apart run back to back without end (a file change is picked up at once, without a pass)",
    fix: "give the seconds between full passes, at least 1 (default 300)",
  },
  request_timeout_seconds: {
    min: 1,
    tooSmall:
      "shorter than Key Vault takes to answer an import (about 0.5 s at its usual latency): imports that would succeed time out, and each costs a reconcile",
    max: {
      value: maxRequestTimeoutSeconds,
      tooLarge: `longer than a timer can hold (${maxRequestTimeoutSeconds} s, about 24.8 days): every token request would time out at once`,
    },
    fix: `give the seconds a request to Key Vault may take, from 1 to ${maxRequestTimeoutSeconds} (default 30)`,
  },
  backoff_base_seconds: {
    min: 0.1,
    tooSmall:
      "a deployment that fails (a source not valid yet, a vault that refuses it) would be retried many times a second at first, each retry a log line and a request to the vault",
    fix: "give the first retry delay in seconds, at least 0.1 (default 2)",
  },
  backoff_max_seconds: {
    min: 1,
    tooSmall:
      "a deployment that keeps failing would be retried many times a second, each retry a log line and a request to the vault",
    fix: "give the largest retry delay in seconds, at least 1 and at least backoff_base_seconds (default 300)",
  },
}

export const AgentSettingsSchema = Schema.Struct({
  reconcile_interval_seconds: Schema.optionalKey(
    Schema.Finite.check(Schema.isGreaterThanOrEqualTo(secondsBounds.reconcile_interval_seconds.min)).annotate(
      {
        description: "Seconds between full reconcile passes, at least 1 (default 300)",
      },
    ),
  ),
  concurrency: Schema.optionalKey(
    positiveInt("Deployments reconciled at once, across all vaults (default 32)"),
  ),
  vault_concurrency: Schema.optionalKey(
    positiveInt(
      "Deployments of one vault reconciled at once (default 16, at most concurrency); each holds at most one connection to its vault",
    ),
  ),
  listen: Schema.optionalKey(
    Schema.String.annotate({
      description: "HTTP listen address host:port for /metrics, /healthz, /readyz (default 127.0.0.1:9464)",
    }),
  ),
  state_dir: Schema.optionalKey(
    Schema.String.annotate({
      description:
        "Directory for the last outcome per deployment and the agent's lock (default: $STATE_DIRECTORY when systemd sets it, else kvdeploy-agent-state next to the configuration file)",
    }),
  ),
  shutdown_grace_seconds: Schema.optionalKey(
    positiveNumber("Seconds SIGTERM waits for deploys in flight (default 30)"),
  ),
  debounce_ms: Schema.optionalKey(
    Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)).annotate({
      description: "Quiet time after a file change before reconciling (default 500)",
    }),
  ),
  vault_imports_per_window: Schema.optionalKey(
    positiveInt("Imports per vault per window (Key Vault: 300; default 290)"),
  ),
  vault_reads_per_window: Schema.optionalKey(
    positiveInt("Other requests per vault per window (Key Vault: 4000; default 3900)"),
  ),
  vault_window_seconds: Schema.optionalKey(positiveNumber("Key Vault's throttling window (default 10)")),
  backoff_base_seconds: Schema.optionalKey(
    Schema.Finite.check(Schema.isGreaterThanOrEqualTo(secondsBounds.backoff_base_seconds.min)).annotate({
      description: "First retry delay of a failed deployment, at least 0.1 (default 2)",
    }),
  ),
  backoff_max_seconds: Schema.optionalKey(
    Schema.Finite.check(Schema.isGreaterThanOrEqualTo(secondsBounds.backoff_max_seconds.min)).annotate({
      description:
        "Largest retry delay of a failed deployment, before the ±20% jitter, at least 1 (default 300)",
    }),
  ),
  request_timeout_seconds: Schema.optionalKey(
    Schema.Finite.check(
      Schema.isGreaterThanOrEqualTo(secondsBounds.request_timeout_seconds.min),
      Schema.isLessThanOrEqualTo(maxRequestTimeoutSeconds),
    ).annotate({
      description: `Per-request timeout towards Key Vault, in seconds: 1 to ${maxRequestTimeoutSeconds} (default 30)`,
    }),
  ),
  recover_timeout_seconds: Schema.optionalKey(
    positiveNumber(
      "How long a deployment with on_soft_deleted: recover waits for Key Vault to serve the recovered certificate (default 300)",
    ),
  ),
  vault_list_min_deployments: Schema.optionalKey(
    Schema.Finite.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)).annotate({
      description:
        "A pass lists a vault's certificates (one request per 25) to find the deployments already in place, instead of one read each, when it covers at least this many deployments of the vault (default 25; 0: never list)",
    }),
  ),
  material_workers: Schema.optionalKey(
    Schema.Finite.check(
      Schema.isInt(),
      Schema.isGreaterThanOrEqualTo(0),
      Schema.isLessThanOrEqualTo(maxMaterialWorkers),
    ).annotate({
      description:
        "Worker threads that parse sources and build PFX files for deploys, off the main thread (0 to 64; default 0: everything on the main thread; worth it for large cold passes on a host with spare cores)",
    }),
  ),
})

export const AgentConfigSchema = Schema.Struct({
  agent: Schema.optionalKey(AgentSettingsSchema),
  deployments: Schema.Array(DeploymentSchema),
}).annotate({
  title: "kvdeploy-agent configuration",
  description: "Deployments (a certificate source and a Key Vault target each) and agent settings.",
})

export type RawAgentConfig = typeof AgentConfigSchema.Type

// ---------------------------------------------------------------------------
// The validated configuration
// ---------------------------------------------------------------------------

export type Source = (
  | {
      readonly _tag: "Pem"
      readonly cert: string
      readonly chain: string | undefined
      readonly key: string | undefined
    }
  | { readonly _tag: "Pfx"; readonly pfx: string; readonly passwordEnv: string | undefined }
) & {
  /**
   * The user (uid) whose files, directories and links pass too (`source.owner`: an ACME client
   * that runs as its own user), besides root and the agent's user (pathTrust.ts).
   */
  readonly owner?: number | undefined
}

export interface Pickup {
  readonly host: string
  readonly port: number
  readonly servername: string
}

export interface Deployment {
  readonly name: string
  readonly source: Source
  readonly target: TargetConfig
  readonly certificateId: string
  readonly adopt: boolean
  readonly pickup: Pickup | undefined
  /**
   * Stable digest of what the deployment writes (source, target, certificate id, adopt; not
   * `pickup`, which only watches a consumer): a change means "reconsider held outcomes".
   */
  readonly fingerprint: string
  /**
   * The fingerprints earlier agents wrote to the state file for this configuration, where they
   * differ from `fingerprint`: with `pickup` included (before it was left out), and with object keys
   * in the host's collation (before one fixed collation: a Swedish or Danish host ordered tag keys
   * otherwise). A record carrying one is this deployment's, so an upgrade releases no held outcome.
   * Records written since carry `fingerprint`.
   */
  readonly formerFingerprints?: ReadonlyArray<string>
}

/** Whether a state record's configuration fingerprint is `d`'s (its own, or one earlier agents wrote for it). */
export const isDeploymentOf = (
  configFingerprint: string | undefined,
  d: Pick<Deployment, "fingerprint" | "formerFingerprints">,
): boolean =>
  configFingerprint !== undefined &&
  (configFingerprint === d.fingerprint || d.formerFingerprints?.includes(configFingerprint) === true)

export interface AgentSettings {
  readonly reconcileIntervalMs: number
  readonly concurrency: number
  /** Deployments of one vault in progress at once (at most `concurrency`). */
  readonly vaultConcurrency: number
  readonly listenHost: string
  readonly listenPort: number
  readonly stateDir: string
  readonly shutdownGraceMs: number
  readonly debounceMs: number
  readonly importsPerWindow: number
  readonly readsPerWindow: number
  readonly windowMs: number
  readonly backoffBaseMs: number
  readonly backoffMaxMs: number
  readonly requestTimeoutMs: number
  /** How long a recovery of a soft-deleted certificate may take to be served (then the deploy fails, outcome unknown). */
  readonly recoverTimeoutMs: number
  /** A pass lists a vault with at least this many deployments (0: never). */
  readonly vaultListMinDeployments: number
  /** Worker threads for the material of deploys (materialPool.ts; 0: none). */
  readonly materialWorkers: number
}

/** Each setting's key under `agent:` in the configuration file, as a message names it. */
const settingKeys: { readonly [K in keyof AgentSettings]: string } = {
  reconcileIntervalMs: "reconcile_interval_seconds",
  concurrency: "concurrency",
  vaultConcurrency: "vault_concurrency",
  listenHost: "listen",
  listenPort: "listen",
  stateDir: "state_dir",
  shutdownGraceMs: "shutdown_grace_seconds",
  debounceMs: "debounce_ms",
  importsPerWindow: "vault_imports_per_window",
  readsPerWindow: "vault_reads_per_window",
  windowMs: "vault_window_seconds",
  backoffBaseMs: "backoff_base_seconds",
  backoffMaxMs: "backoff_max_seconds",
  requestTimeoutMs: "request_timeout_seconds",
  recoverTimeoutMs: "recover_timeout_seconds",
  vaultListMinDeployments: "vault_list_min_deployments",
  materialWorkers: "material_workers",
}

/** The `agent:` keys whose values differ between two settings, in the file's words (`agent.listen`). */
export const changedSettings = (from: AgentSettings, to: AgentSettings): Array<string> => [
  ...new Set(
    (Object.keys(settingKeys) as Array<keyof AgentSettings>)
      .filter((k) => from[k] !== to[k])
      .map((k) => `agent.${settingKeys[k]}`),
  ),
]

export interface AgentConfig {
  readonly path: string
  readonly settings: AgentSettings
  readonly deployments: ReadonlyArray<Deployment>
  /** SHA-256 of the file's text, when read from a file (a reload of the same text changes nothing). */
  readonly textSha256?: string
  /**
   * What the environment lacks for some deployments (a credential mode's variables): the running
   * agent logs them and runs every deployment it can (those fail with "no vault access" until the
   * variable is set); `--check` counts them as problems.
   */
  readonly environmentProblems?: ReadonlyArray<ConfigProblem>
  /**
   * Problems `--check` counts and the running agent does not log at start: a workload identity's
   * federated token that expired more than 5 minutes ago (the kubelet may renew the file while the
   * agent runs; the identity's outage lines name an expired token as the cause).
   */
  readonly checkOnlyProblems?: ReadonlyArray<ConfigProblem>
}

/** A deployment's source with its place in the configuration's `deployments`. */
export interface SourceAt {
  readonly index: number
  /** The deployment's name, when it is one the schema takes (an invalid file's may not be). */
  readonly name?: string
  readonly source: Source
}

/** A deployment whose source and target are valid, with its place in the configuration's `deployments`. */
export interface DeploymentAt extends SourceAt {
  readonly target: Deployment["target"]
  readonly certificateId: string
}

/** The configuration file cannot be used; `problems` lists every issue. */
export class AgentConfigInvalid extends Data.TaggedError("AgentConfigInvalid")<{
  readonly path: string
  readonly problems: ReadonlyArray<ConfigProblem>
  /**
   * What can still be checked in an invalid file (`--check`): the sources that were valid (at their
   * place in the file), the deployments whose source and target were (their material), the state
   * directory and the listen address when it was host:port, so that their problems are listed in
   * the same run as the file's.
   */
  readonly checkable?: {
    readonly sources: ReadonlyArray<SourceAt>
    readonly deployments: ReadonlyArray<DeploymentAt>
    readonly stateDir: string | undefined
    readonly listen: { readonly host: string; readonly port: number } | undefined
  }
}> {
  override get message(): string {
    return `${this.path}: ${this.problems.length} problem(s): ${this.problems.map((p) => `${p.field}: ${p.message}`).join("; ")}`
  }
}

const problem = (field: string, message: string, fix: string): ConfigProblem => ({ field, message, fix })

/** At most this many problems of one configuration are listed; the rest are counted. */
export const MAX_LISTED_PROBLEMS = 1_000

/**
 * The problems as they are listed: the first MAX_LISTED_PROBLEMS, then one that counts the rest. A
 * file of a million stray keys gave a problem each, and their text, joined for stderr or the log,
 * was longer than a string can be: the agent exited 1 without a word (and systemd restarted it).
 */
export const listedProblems = (problems: ReadonlyArray<ConfigProblem>): ReadonlyArray<ConfigProblem> =>
  problems.length <= MAX_LISTED_PROBLEMS
    ? problems
    : [
        ...problems.slice(0, MAX_LISTED_PROBLEMS),
        problem(
          "(configuration)",
          `has ${problems.length - MAX_LISTED_PROBLEMS} more problems, not listed`,
          "fix the ones listed first; a file with this many problems is probably not the agent's configuration",
        ),
      ]

const pathText = (path: ReadonlyArray<PropertyKey> | undefined): string => {
  let out = ""
  for (const segment of path ?? []) {
    if (typeof segment === "number") out += `[${segment}]`
    else out += out === "" ? keyInField(String(segment)) : `.${keyInField(String(segment))}`
  }
  return out === "" ? "(config)" : out
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

const parseListen = (listen: string): { host: string; port: number } | undefined => {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:\s]+)):(\d{1,5})$/.exec(listen.trim())
  if (m === null) return undefined
  const port = Number(m[3])
  if (port > 65535) return undefined
  return { host: m[1] ?? m[2] ?? "127.0.0.1", port }
}

const defaults = {
  reconcileIntervalSeconds: 300,
  concurrency: 32,
  vaultConcurrency: 16,
  listen: "127.0.0.1:9464",
  stateDir: "kvdeploy-agent-state",
  shutdownGraceSeconds: 30,
  debounceMs: 500,
  importsPerWindow: 290,
  readsPerWindow: 3900,
  windowSeconds: 10,
  backoffBaseSeconds: 2,
  backoffMaxSeconds: 300,
  requestTimeoutSeconds: 30,
  recoverTimeoutSeconds: 300,
  vaultListMinDeployments: 25,
} as const

/**
 * The fingerprint of a deployment's configuration: SHA-256 (hex) of its
 * canonical JSON. A digest, not the JSON itself (about 500 bytes per
 * deployment): the agent keeps one per deployment, in memory and in the state
 * file. State files written before held the canonical JSON itself; state.ts
 * digests those when it reads them, so a held outcome stays held.
 */
export const configFingerprintOf = (canonicalJson: string): string =>
  createHash("sha256").update(canonicalJson).digest("hex")

/**
 * The collation of fingerprint keys: `localeCompare`'s, as when fingerprints were first written
 * (JSON.stringify with a replacer that rebuilt every object from its sorted entries), but for one
 * fixed locale. `localeCompare` without one follows the host's locale (LANG, LC_ALL), and many
 * locales order tag keys differently (Swedish puts "ä" after "z", Danish "aa" after "z", Czech
 * "ch" after "h"): the same configuration would then get another fingerprint after a restart
 * under another locale, and an outcome held for a person would be tried again. en-US is ICU's
 * root order, as the C, C.UTF-8, POSIX, en_* and unset locales were, so fingerprints written on
 * such hosts are unchanged. The order still comes from the ICU data of the Node.js that runs the
 * agent: a Node.js upgrade that changes the root collation can change a fingerprint once.
 */
const keyCollator = new Intl.Collator("en-US")
/**
 * The host's collation, as agents before keyCollator sorted fingerprint keys: a record they wrote
 * under a locale that orders keys otherwise carries the fingerprint of this order (formerFingerprints).
 */
const hostCollator = new Intl.Collator()
const hostOrderIsFixed = hostCollator.resolvedOptions().locale === keyCollator.resolvedOptions().locale

/**
 * The order of an object's keys in a fingerprint: sorted with keyCollator, so that a restart
 * recognises them. An object built in this order enumerates its integer-like keys first,
 * ascending, as that rebuilt one did. Worked out once per set of keys instead of once per object.
 */
/** Sets of keys remembered per collation (tags may give every deployment its own set). */
const maxKeyOrders = 1000
const keyOrdering = (collator: Intl.Collator) => {
  const keyOrders = new Map<string, ReadonlyArray<string>>()
  return (keys: ReadonlyArray<string>): ReadonlyArray<string> => {
    // JSON of the array, not a join: a key may hold any character (a tag key with a NUL would make
    // ["x\u0000y"] and ["x", "y"] one signature, and the second set would be copied in the first's order).
    const signature = JSON.stringify(keys)
    const known = keyOrders.get(signature)
    if (known !== undefined) return known
    // Keys the collation calls equal (a composed and a decomposed "ä", keys apart only by an ignorable
    // character) are ordered by code unit, so their order in the file does not change the fingerprint.
    const order = [...keys].sort((a, b) => collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0))
    if (keyOrders.size < maxKeyOrders) keyOrders.set(signature, order)
    return order
  }
}

/**
 * A copy of `value` (plain objects, arrays, strings, numbers, booleans: a deployment's validated
 * fields) with each object's keys in `keyOrder`'s order: JSON.stringify of it is the canonical
 * JSON a fingerprint is taken of. One native JSON.stringify instead of a replacer that sorted
 * every object: 10,000 deployments in about 30 ms instead of 90.
 */
const canonicalBy = (keyOrder: (keys: ReadonlyArray<string>) => ReadonlyArray<string>) => {
  const canonical = (value: unknown): unknown => {
    if (typeof value !== "object" || value === null) return value
    if (Array.isArray(value)) return value.map(canonical)
    const record = value as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (const key of keyOrder(Object.keys(record))) {
      // An own "__proto__" key (a tag may be named so), as Object.fromEntries makes it.
      if (key === "__proto__")
        Object.defineProperty(out, key, {
          value: canonical(record[key]),
          enumerable: true,
          writable: true,
          configurable: true,
        })
      else out[key] = canonical(record[key])
    }
    return out
  }
  return canonical
}

/** The canonical JSON of a fingerprint: keys in keyCollator's order. */
const canonicalJson = (value: unknown): string => JSON.stringify(canonical(value))
const canonical = canonicalBy(keyOrdering(keyCollator))
/** The canonical JSON agents before keyCollator wrote on this host: keys in the host's order. */
const hostCanonical = canonicalBy(keyOrdering(hostCollator))

/**
 * The fingerprints earlier agents wrote for a deployment that writes `written` and watches `pickup`
 * (see Deployment.formerFingerprints), but for `current` (its canonical JSON now); undefined when
 * there is none.
 */
const formerFingerprintsOf = (
  written: Record<string, unknown>,
  pickup: unknown,
  current: string,
): ReadonlyArray<string> | undefined => {
  const withPickup = pickup === undefined ? undefined : { ...written, pickup }
  // The fixed collation's first (`current` is `written` in it): with pickup, the first is the one
  // written with pickup included. A host whose collation is the fixed one (C, POSIX, en_*) wrote
  // nothing else.
  const jsons = new Set<string>()
  for (const json of [
    ...(withPickup === undefined ? [] : [canonicalJson(withPickup)]),
    ...(hostOrderIsFixed
      ? []
      : [written, ...(withPickup === undefined ? [] : [withPickup])].map((v) =>
          JSON.stringify(hostCanonical(v)),
        )),
  ])
    if (json !== current) jsons.add(json)
  return jsons.size === 0 ? undefined : [...jsons].map(configFingerprintOf)
}

const decodeSchema = Schema.decodeUnknownResult(AgentConfigSchema)

/**
 * Whether `decoded` (what the schema kept of `input`) lacks a key of `input`: the decode that
 * ignores excess keys dropped one. Any difference in the keys counts (symbols too), so a doubt
 * means "yes".
 */
const dropsKeys = (input: unknown, decoded: unknown): boolean => {
  if (typeof decoded !== "object" || decoded === null) return false
  if (typeof input !== "object" || input === null) return true
  if (Array.isArray(decoded)) {
    if (!Array.isArray(input) || input.length !== decoded.length) return true
    for (let i = 0; i < decoded.length; i++) if (dropsKeys(input[i], decoded[i])) return true
    return false
  }
  const keys = Object.keys(decoded)
  if (Object.keys(input).length !== keys.length || Object.getOwnPropertySymbols(input).length > 0) return true
  for (const key of keys)
    if (dropsKeys((input as Record<string, unknown>)[key], (decoded as Record<string, unknown>)[key]))
      return true
  return false
}

/** Every problem of a document (or a source), an unknown key among them. */
const judgeAll = { errors: "all", onExcessProperty: "error" } as const

/**
 * The schema's verdict on a document: every problem, and an unknown key anywhere is one
 * (errors "all", onExcessProperty "error"). A valid configuration is decoded first under Effect's
 * default options (its fast path: no generator per value; 10,000 deployments: about 13 ms instead
 * of 39 once warm, 70 ms instead of 250 cold), and accepted when that decode kept every key; only
 * a configuration with a problem or an unknown key is decoded again to list them all.
 */
const decodeAgentConfigSchema = (input: unknown) => {
  const quick = decodeSchema(input)
  if (Result.isSuccess(quick) && !dropsKeys(input, quick.success)) return quick
  return decodeSchema(input, judgeAll)
}

type AgentSettingsInput = NonNullable<RawAgentConfig["agent"]>

const decodeSettings = Schema.decodeUnknownResult(AgentSettingsSchema)

/**
 * The agent settings of a document the schema refused, judged one field at a time: the fields that
 * pass their own schema, whatever else the file gets wrong, so that the checks across settings
 * still run (a bad deployment name hid a backoff_max_seconds smaller than backoff_base_seconds
 * until the next run). A field given but refused is left out of `settings` and named in `refused`:
 * no check compares it (its own problem is reported).
 */
const settingsJudgedAlone = (
  raw: Record<string, unknown>,
): { readonly settings: AgentSettingsInput; readonly refused: ReadonlySet<string> } => {
  const settings: Record<string, unknown> = {}
  const refused = new Set<string>()
  for (const key of Object.keys(AgentSettingsSchema.fields)) {
    if (!Object.hasOwn(raw, key)) continue
    const judged = decodeSettings({ [key]: raw[key] })
    if (Result.isSuccess(judged) && Object.hasOwn(judged.success, key))
      settings[key] = (judged.success as Record<string, unknown>)[key]
    else refused.add(key)
  }
  return { settings: settings as AgentSettingsInput, refused }
}

/**
 * The description the schema gives the field at `path` (what it is, its default), for the fix of
 * a problem the schema found there: the same text the published JSON Schema carries. Through
 * structs by key, arrays by index, and unions (a source is PEM or PFX) by the first member that
 * describes the path.
 */
const describedAt = (ast: SchemaAST.AST, path: ReadonlyArray<PropertyKey>): string | undefined => {
  const [head, ...rest] = path
  if (head === undefined) return SchemaAST.resolveDescription(ast)
  switch (ast._tag) {
    case "Objects": {
      const property = ast.propertySignatures.find((p) => p.name === head)
      return property === undefined ? undefined : describedAt(property.type, rest)
    }
    case "Arrays": {
      const item = typeof head === "number" ? (ast.elements[head] ?? ast.rest[0]) : undefined
      return item === undefined ? undefined : describedAt(item, rest)
    }
    case "Union":
      for (const member of ast.types) {
        const found = describedAt(member, path)
        if (found !== undefined) return found
      }
      return undefined
    default:
      return undefined
  }
}

/** The keys an object of the schema has at `path` (every member's, for a union). */
const keysAt = (ast: SchemaAST.AST, path: ReadonlyArray<PropertyKey>): Array<string> => {
  const [head, ...rest] = path
  switch (ast._tag) {
    case "Objects":
      if (head === undefined) return ast.propertySignatures.map((p) => String(p.name))
      return keysAt(ast.propertySignatures.find((p) => p.name === head)?.type ?? SchemaAST.never, rest)
    case "Arrays": {
      const item = typeof head === "number" ? (ast.elements[head] ?? ast.rest[0]) : undefined
      return item === undefined ? [] : keysAt(item, rest)
    }
    case "Union":
      return [...new Set(ast.types.flatMap((member) => keysAt(member, path)))]
    default:
      return []
  }
}

/**
 * The fix for a key the schema does not know at `path`: the known key it is a typo of (within two
 * edits), and the keys known there.
 */
const unknownKeyFix = (path: ReadonlyArray<PropertyKey>): string => {
  const key = path.at(-1)
  const known = keysAt(AgentConfigSchema.ast, path.slice(0, -1))
  if (typeof key !== "string" || known.length === 0)
    return "see schema/agent-config.schema.json or docs/agent.md"
  // At the top, a key of the operator's own (a place for anchors) goes under a name starting with x-.
  // (The key is not repeated: it may be text pasted in the wrong place.)
  const extension =
    path.length === 1 ? "; a key of your own here (a place for YAML anchors) must start with x-" : ""
  return `${didYouMean(key, known)}known keys here: ${known.join(", ")}${extension}; see docs/agent.md (configuration reference)`
}

/**
 * The fix of a problem the schema found at `path`: the field's description when the problem is its
 * value; for a key the schema does not expect there, the key it is likely a typo of and the keys
 * known there. The document itself (an empty path) gets the pointer.
 */
const schemaFix = (path: ReadonlyArray<PropertyKey>, message: string, value?: unknown): string => {
  if (path.length > 0 && /excess|unexpected/i.test(message)) return unknownKeyFix(path)
  if (path.length === 1 && path[0] === "deployments") {
    if (message === "Missing key")
      return "add deployments: the list of certificates the agent keeps deployed, each with name, source and target (examples/agent.yaml has one); see docs/agent.md (configuration reference)"
    if (value === null)
      return "deployments: has no value (a key with nothing after it is YAML's null): list the deployments under it, each `- name: …` with its source and target, indented below it; see docs/agent.md (configuration reference)"
  }
  if (path.length === 0) return documentFix(value)
  // YAML 1.2 (the agent's reader) takes yes, no, on, off as text: only true and false are booleans.
  if (
    message === "Expected boolean" &&
    typeof value === "string" &&
    yaml11Booleans.has(value.toLowerCase())
  ) {
    const description = describedAt(AgentConfigSchema.ast, path)
    return `write ${/^(y|yes|on|true)$/i.test(value) ? "true" : "false"}: YAML 1.2, which the agent reads, takes ${value} as text, not a boolean (only true and false are)${description === undefined ? "" : ` (${description})`}; see docs/agent.md (configuration reference)`
  }
  if (message === "Missing key" && path.at(-1) === "source" && path.length === 3)
    return "give the certificate's files: cert and key (PEM, with chain when the chain is a file of its own), or pfx and pfx_password_env; see docs/agent.md (configuration reference)"
  const description = path.length === 0 ? undefined : describedAt(AgentConfigSchema.ast, path)
  return description === undefined
    ? "see schema/agent-config.schema.json or docs/agent.md"
    : `${description}; see docs/agent.md (configuration reference)`
}

/**
 * Core's fix of a target problem, or a more specific one: a tag whose value is YAML's null (`env:`,
 * `env: ~`, `env: null`) is told to take a value or go, since quoting it would store the text "null".
 */
const targetFix = (p: ConfigProblem, rawTarget: Record<string, unknown>): string => {
  const tag = /^tags\.(.+)$/.exec(p.field)?.[1]
  const tags = rawTarget.tags
  if (
    tag !== undefined &&
    typeof tags === "object" &&
    tags !== null &&
    Object.entries(tags).some(([k, v]) => v === null && keyInField(k) === tag)
  )
    return "give the tag a value (tags: { env: prod }) or remove it: a key with nothing after it, ~ or null is YAML's null, no value (quoted, it would be the text null)"
  return p.fix
}

/**
 * A valid configuration with no deployment (`deployments: []`): the agent runs, and deploys nothing.
 * A warning of `--check` and of the start, since an agent that does nothing looks like one that works.
 */
export const noDeploymentsWarning: ConfigProblem = {
  field: "deployments",
  message: "is an empty list: the agent runs and deploys nothing",
  fix: "list the certificates to deploy under deployments: (each with name, source and target; examples/agent.yaml has one), then send SIGHUP or restart the agent; if none is meant yet, nothing to do",
}

/** YAML 1.1's booleans other than true and false, which YAML 1.2 reads as text (and the text true/false, quoted). */
const yaml11Booleans: ReadonlySet<string> = new Set(["y", "n", "yes", "no", "on", "off", "true", "false"])

/** Text that is a PEM file's (a certificate, a key): the configuration's path names such a file. */
const looksLikePem = (value: unknown): boolean =>
  typeof value === "string" && /-----BEGIN [A-Z0-9 ]+-----/.test(value)

/** The problem of a document that is no mapping: a PEM file given as the configuration, or another kind of file. */
const documentMessage = (message: string, value: unknown): string =>
  looksLikePem(value)
    ? "is a PEM file (a certificate or a key), not the agent's configuration; its content is not shown"
    : message

const documentFix = (value: unknown): string =>
  looksLikePem(value)
    ? "give --config (or KVDEPLOY_AGENT_CONFIG) the agent's configuration file, a YAML mapping with agent: and deployments:; certificates and keys are named by each deployment's source (cert, chain, key or pfx)"
    : "the configuration is a YAML mapping with agent: and deployments: (examples/agent.yaml has one); see schema/agent-config.schema.json or docs/agent.md"

interface SourceForm {
  readonly form: string
  readonly keys: ReadonlyArray<string>
  /** Every problem, an unknown key among them. */
  readonly judge: (source: unknown) => Result.Result<unknown, { readonly issue: SchemaIssue.Issue }>
}

const decodePem = Schema.decodeUnknownResult(PemSourceSchema)
const decodePfx = Schema.decodeUnknownResult(PfxSourceSchema)
const pemForm: SourceForm = {
  form: "PEM",
  keys: Object.keys(PemSourceSchema.fields).filter((k) => k !== "owner"),
  judge: (source) => decodePem(source, judgeAll),
}
const pfxForm: SourceForm = {
  form: "PFX",
  keys: Object.keys(PfxSourceSchema.fields).filter((k) => k !== "owner"),
  judge: (source) => decodePfx(source, judgeAll),
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const dnsName =
  /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$/

/** Why `value` cannot be a pickup host or SNI name (a DNS name or an IP address), or undefined. */
const hostProblem = (value: string): { readonly message: string; readonly fix: string } | undefined => {
  // A name whose last label is all digits would be read as an (invalid) address: 1.2.3.256, 127.1.
  if (isIP(value) !== 0 || (dnsName.test(value) && !/(^|\.)\d+\.?$/.test(value))) return undefined
  const fix = "give the DNS name or IP address the consumer serves TLS on, e.g. api.example.com"
  if (/^\[[^\]]*\](:\d+)?$/.test(value))
    return {
      message: `${quotedValue(value)} is an IPv6 address in brackets`,
      fix: "write the address without brackets; give the port in pickup.port",
    }
  if (/^[^:]+:\d+$/.test(value))
    return {
      message: `${quotedValue(value)} has a port`,
      fix: "give the host alone and the port in pickup.port",
    }
  const ascii = domainToASCII(value)
  if (/\P{ASCII}/u.test(value) && ascii !== "" && dnsName.test(ascii))
    return {
      message: `${quotedValue(value)} is an internationalised name`,
      fix: `write its ASCII form: ${ascii}`,
    }
  return { message: `${quotedValue(value)} is not a DNS name or an IP address`, fix }
}

/** A user name looked up: its uid, none of that name (`missing`), or no way to look (`unavailable`). */
export type UserLookup = number | "missing" | "unavailable"

/** How long one `getent passwd` may take (a slow LDAP or SSSD server). */
const userLookupTimeoutMs = 5000

/** What `getent passwd NAME` answered: its exit status (null when it did not exit) and output. */
const userLookupOf = (failed: boolean, status: number | null, stdout: string): UserLookup => {
  if (failed && status === null) return "unavailable"
  // getent exits 2 when the name is not found.
  if (status === 2) return "missing"
  const uid = status === 0 ? Number(stdout.split(":")[2]) : Number.NaN
  return Number.isInteger(uid) && uid >= 0 ? uid : "unavailable"
}

/**
 * The uid of the user `name` as the host's name service knows it (`getent passwd`, which reads
 * /etc/passwd and whatever else nsswitch.conf names, LDAP or SSSD). Synchronous, for callers that
 * have no event loop to keep; the agent's loads use `lookUpUserId`.
 */
export const systemUserIdOf = (name: string): UserLookup => {
  const r = spawnSync("getent", ["passwd", name], { encoding: "utf8", timeout: userLookupTimeoutMs })
  return userLookupOf(r.error !== undefined, r.error !== undefined ? null : r.status, r.stdout ?? "")
}

/**
 * `systemUserIdOf` in a child process the event loop does not wait for: a configuration (re)load
 * naming users by name no longer holds the agent's loop (its metrics, health and running deploys)
 * while the name service answers. Interrupting it kills the `getent`.
 */
export const lookUpUserId = (name: string): Effect.Effect<UserLookup> =>
  Effect.callback<UserLookup>((resume, signal) => {
    execFile(
      "getent",
      ["passwd", name],
      { encoding: "utf8", timeout: userLookupTimeoutMs, signal },
      (error, stdout) => {
        const status = error === null ? 0 : typeof error.code === "number" ? error.code : null
        resume(Effect.succeed(userLookupOf(error !== null, status, stdout)))
      },
    )
  })

/**
 * `source.owner` as a uid (a number is one; a name is looked up), or undefined when it is not given
 * or cannot be used (a problem is then added; a value of the wrong form is the schema's problem).
 */
const sourceOwnerOf = (
  value: unknown,
  field: string,
  uidOf: (name: string) => UserLookup,
  problems: Array<ConfigProblem>,
): number | undefined => {
  if (typeof value === "number") return Number.isInteger(value) && value >= 0 ? value : undefined
  // Digits only: a uid (no user name is all digits: useradd refuses them).
  if (typeof value === "string" && /^[0-9]{1,10}$/.test(value)) return Number(value)
  if (typeof value !== "string" || !/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(value)) return undefined
  const uid = uidOf(value)
  if (typeof uid === "number") return uid
  problems.push(
    uid === "missing"
      ? problem(
          field,
          `names the user ${value}, unknown on this host (getent passwd ${value} finds none)`,
          "give the name or the uid of the user that writes the source's files (the ACME client's user)",
        )
      : problem(
          field,
          `names the user ${value}, but user names cannot be looked up here (getent passwd failed)`,
          "give the user's uid (a number) instead of its name",
        ),
  )
  return undefined
}

/** A source key the deployment checks refuse as a secret (a password never goes in the configuration). */
const secretLookingSourceKey = (key: unknown): boolean =>
  typeof key === "string" && /password|passphrase|secret/i.test(key) && key !== "pfx_password_env"

/**
 * The problems of deployment `index`'s source (a plain object the schema refused), judged against
 * the one form it is written in, instead of the union's verdict, which lists every problem of both
 * forms (a typo in a PEM source came with "pfx: Missing key" and "cert: Expected no excess
 * property"). A source with keys of both forms is one problem; one with keys of neither is judged
 * as PEM, with the other form named in the fix.
 */
const sourceProblems = (index: number, source: Record<string, unknown>): Array<ConfigProblem> => {
  const uses = (form: SourceForm) => form.keys.some((k) => Object.hasOwn(source, k))
  const field = `deployments[${index}].source`
  const both = `give either a PEM source (${pemForm.keys.join(", ")}) or a PFX source (${pfxForm.keys.join(", ")})`
  if (uses(pemForm) && uses(pfxForm))
    // A pfx named with PEM files is reported by the deployment checks below, in their words.
    return typeof source.pfx === "string" && pemForm.keys.some((k) => source[k] !== undefined)
      ? []
      : [problem(field, "mixes the keys of a PEM source and a PFX source", both)]
  const form = uses(pfxForm) ? pfxForm : pemForm
  const judged = form.judge(source)
  // Its own form accepts it (cannot happen when the union refused it): say so rather than nothing.
  if (Result.isSuccess(judged))
    return [
      problem(field, "does not match the schema", "see schema/agent-config.schema.json or docs/agent.md"),
    ]
  const issues = formatter(judged.failure.issue).issues.filter(
    // A key that looks like a secret is reported by the deployment checks below, in their words.
    (issue) =>
      !(/excess|unexpected/i.test(issue.message) && secretLookingSourceKey((issue.path ?? []).at(-1))),
  )
  return issues.map((issue) => {
    const path = ["deployments", index, "source", ...(issue.path as ReadonlyArray<PropertyKey>)]
    const fix = /excess|unexpected/i.test(issue.message)
      ? `${didYouMean((issue.path ?? []).at(-1), [...form.keys, "owner"])}a ${form.form} source has ${form.keys.join(", ")} (and owner, of either form); see docs/agent.md (configuration reference)`
      : uses(form)
        ? schemaFix(path, issue.message)
        : both
    return problem(
      pathText(path),
      schemaMessage(issue.message, valueAt(source, (issue.path ?? []) as ReadonlyArray<PropertyKey>)),
      fix,
    )
  })
}

/** The value at `path` in the document (undefined where there is none). */
const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown => {
  let at: unknown = input
  for (const key of path) {
    if (typeof at !== "object" || at === null || !Object.hasOwn(at, key)) return undefined
    at = (at as Record<PropertyKey, unknown>)[key]
  }
  return at
}

/**
 * A schema issue's message as the agent's own checks word it: the schema's "Missing key" is "is
 * missing"; a pattern's RegExp is not shown (the fix says what the field takes), nor the value (a
 * password written as pfx_password_env would be printed), an empty value is said to be empty; a
 * number or boolean where text goes is told to be quoted (without repeating it either).
 */
const schemaMessage = (message: string, value?: unknown): string =>
  message === "Missing key"
    ? "is missing"
    : message === "Expected no excess property"
      ? // The words of core's target check, for a key no field of the agent's has.
        "is not a known field"
      : /^Expected a string matching the RegExp /.test(message) && typeof value === "string"
        ? value === ""
          ? "is empty"
          : // Not quoted: a pfx_password_env that fails its pattern may be the password itself.
            "is not of the form this field takes (see the fix)"
        : message === "Expected string" && (typeof value === "number" || typeof value === "boolean")
          ? // Not repeated: a password of digits written as pfx_password_env is read as a number.
            `is a ${typeof value}, not text: quote it`
          : message

/** Top-level keys the agent ignores: a place for YAML anchors (`x-vault: &vault {...}`), as Docker Compose has. */
const extensionKey = /^x-/

/** Text that is certificate or key material: PEM, or the base64 of DER or of encoded bytes. */
const holdsMaterial = (text: string): boolean =>
  /-----BEGIN |PRIVATE KEY-----/.test(text) || looksLikeDerBase64(text) || holdsEncodedBase64(text)

/**
 * The top-level `x-` keys whose value holds certificate or key material anywhere (a string, or a
 * key of a mapping inside it): the agent ignores them, but keys stay out of its configuration, as
 * in a tag or a path (its warnings say the file holds none).
 */
const materialInExtensions = (document: unknown): Array<ConfigProblem> => {
  if (!isPlainObject(document)) return []
  const problems: Array<ConfigProblem> = []
  for (const [key, value] of Object.entries(document)) {
    if (!extensionKey.test(key)) continue
    const seen = new Set<object>()
    const stack: Array<unknown> = [value]
    let found = false
    for (let v = stack.pop(); v !== undefined && !found; v = stack.pop()) {
      if (typeof v === "string") found = holdsMaterial(v)
      else if (typeof v === "object" && v !== null && !seen.has(v)) {
        seen.add(v)
        for (const [k, item] of Object.entries(v)) {
          if (!Array.isArray(v) && holdsMaterial(k)) found = true
          stack.push(item)
        }
      }
    }
    if (found)
      problems.push(
        problem(
          keyInField(key),
          "holds PEM text or the base64 of a key or certificate; it is not shown here",
          "remove it: certificates and keys go in files that a deployment's source names, never in the configuration",
        ),
      )
  }
  return problems
}

/** The document without its top-level `x-` keys (the same object when it has none). */
const withoutExtensions = (document: unknown): unknown => {
  if (!isPlainObject(document) || !Object.keys(document).some((k) => extensionKey.test(k))) return document
  return Object.fromEntries(Object.entries(document).filter(([k]) => !extensionKey.test(k)))
}

/**
 * Validate a decoded YAML/JSON document. `env` is consulted only to check
 * that the variables named for PFX passwords exist (their values are never read here).
 */
export const validateAgentConfig = (
  document: unknown,
  path: string,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
  userIdOf: (name: string) => UserLookup = systemUserIdOf,
): Result.Result<AgentConfig, AgentConfigInvalid> => {
  const problems: Array<ConfigProblem> = []
  const uids = new Map<string, UserLookup>()
  const uidOf = (name: string): UserLookup => {
    let found = uids.get(name)
    if (found === undefined) {
      found = userIdOf(name)
      uids.set(name, found)
    }
    return found
  }
  problems.push(...materialInExtensions(document))
  const input = withoutExtensions(document)
  const doc = (typeof input === "object" && input !== null ? input : {}) as Record<string, unknown>
  const rawDeployments = Array.isArray(doc.deployments) ? (doc.deployments as Array<unknown>) : []
  const rawAgent = isPlainObject(doc.agent) ? doc.agent : {}
  const decoded = decodeAgentConfigSchema(input)
  /** The schema's problems with target fields, kept unless core's validation finds the same field wrong. */
  const schemaTargetProblems: Array<ConfigProblem> = []
  if (Result.isFailure(decoded)) {
    const standard = formatter(decoded.failure.issue)
    /** Deployments whose source (a plain object) has problems: judged against its own form below. */
    const sourcesToJudge = new Set<number>()
    for (const issue of standard.issues) {
      const issuePath = issue.path as ReadonlyArray<PropertyKey>
      const [top, index, part] = issuePath
      if (
        top === "deployments" &&
        typeof index === "number" &&
        part === "source" &&
        issuePath.length >= 3 &&
        isPlainObject((rawDeployments[index] as Record<string, unknown> | undefined)?.source)
      ) {
        if (!sourcesToJudge.has(index)) {
          sourcesToJudge.add(index)
          problems.push(
            ...sourceProblems(index, (rawDeployments[index] as { source: Record<string, unknown> }).source),
          )
        }
        continue
      }
      const field = pathText(issuePath)
      // Target fields are checked (with better messages, secrets included) by core's validation below.
      if (/^deployments\[\d+\]\.target\.[^.]+$/.test(field) && /excess|unexpected/i.test(issue.message))
        continue
      // Checked below, with its own fix.
      if (field === "agent.material_workers") continue
      // A number outside the bounds only a mistake crosses: checked below, once, saying why.
      if (
        issuePath.length === 2 &&
        top === "agent" &&
        typeof index === "string" &&
        Object.hasOwn(secondsBounds, index) &&
        typeof rawAgent[index] === "number"
      )
        continue
      // One problem a field: a value the schema refuses twice (.inf: not finite, not an integer) is listed once.
      if (problems.some((p) => p.field === field) || schemaTargetProblems.some((p) => p.field === field))
        continue
      const value = valueAt(input, issuePath)
      // A deployment name: what is wrong with it, and the form, from the pattern's own rule.
      const badName =
        /^deployments\[\d+\]\.name$/.test(field) &&
        typeof value === "string" &&
        value !== "" &&
        /^Expected a string matching the RegExp /.test(issue.message)
      const found = badName
        ? problem(
            field,
            deploymentNameFault(value),
            `give a name of ${deploymentNameRule} (it names the deployment in logs, metrics and the state file)`,
          )
        : problem(
            field,
            issuePath.length === 0
              ? documentMessage(issue.message, value)
              : schemaMessage(issue.message, value),
            schemaFix(issue.path as ReadonlyArray<PropertyKey>, issue.message, value),
          )
      // A target field core's validation below also refuses is reported once, in core's words.
      if (/^deployments\[\d+\]\.target(\.|$)/.test(field)) schemaTargetProblems.push(found)
      else problems.push(found)
    }
  }
  // Core's target validation and cross-deployment checks run on what is there, even when the schema failed.
  const names = new Map<string, number>()
  // One instance of what deployments of a vault have in common (URL, vault name, cloud), not a copy
  // per deployment (a custom cloud's object and the strings: a few hundred bytes each, kept for as
  // long as the agent runs).
  const common = new Map<string, unknown>()
  const one = <T>(key: string, value: T): T => {
    const existing = common.get(key)
    if (existing !== undefined) return existing as T
    common.set(key, value)
    return value
  }
  const shared = (t: TargetConfig): TargetConfig => ({
    ...t,
    vaultUrl: one(`url ${t.vaultUrl}`, t.vaultUrl),
    vaultName: one(`name ${t.vaultName}`, t.vaultName),
    cloud: one(`cloud ${JSON.stringify(t.cloud)}`, t.cloud),
  })
  const targets = new Map<string, number>()
  const deployments: Array<Deployment> = []
  /** Each credential mode in use: the first deployment (its place in the file) and how many use it. */
  const modes = new Map<string, { readonly at: string; count: number }>()
  /**
   * A user-assigned client id a managed_identity deployment configures: with it, the AKS token
   * exchange reads the federated token file without AZURE_CLIENT_ID, and `--check` judges the file.
   */
  let managedIdentityClientId: string | undefined
  /** Where managedIdentityClientId was configured: the deployment whose AKS token exchange reads the token file. */
  let managedIdentityClientIdAt: string | undefined
  const resolve = (p: string) => (p.startsWith("/") ? p : `${baseDir}/${p}`)
  const sources: Array<SourceAt> = []
  const deploymentsAt: Array<DeploymentAt> = []
  rawDeployments.forEach((raw, i) => {
    if (typeof raw !== "object" || raw === null) return
    const d = raw as Record<string, unknown>
    const name = typeof d.name === "string" ? d.name : `#${i}`
    const at = `deployments[${i}]`
    if (typeof d.name === "string") {
      const seen = names.get(d.name)
      if (seen !== undefined)
        problems.push(
          problem(
            `${at}.name`,
            `"${d.name}" is also the name of deployments[${seen}]`,
            "give each deployment its own name",
          ),
        )
      else names.set(d.name, i)
    }
    const rawTarget =
      typeof d.target === "object" && d.target !== null
        ? { ...(d.target as Record<string, unknown>) }
        : undefined
    let target: TargetConfig | undefined
    let certificateId = name
    let adopt = false
    if (rawTarget === undefined) {
      if (d.target === undefined)
        problems.push(problem(`${at}.target`, "is missing", "give vault_url and certificate_name"))
    } else {
      if (typeof rawTarget.certificate_id === "string") {
        certificateId = rawTarget.certificate_id
        problems.push(...certificateIdProblems(certificateId, `${at}.target.certificate_id`))
      }
      if (rawTarget.adopt === true) adopt = true
      delete rawTarget.certificate_id
      delete rawTarget.adopt
      // A tag value holding the identity's secret (AZURE_CLIENT_SECRET, say) is refused without being shown.
      const checked = validateTargetConfigSync(rawTarget, { knownSecrets: knownIdentitySecrets(env) })
      // The certificate a target deploys to and its credential mode, judged on their own fields even
      // when another field of the target is wrong: its other problems do not hide these.
      let certificate: TargetConfig | undefined
      let credentialMode: string | undefined
      if (Result.isFailure(checked)) {
        for (const p of checked.failure.problems)
          problems.push({ ...p, field: `${at}.target.${p.field}`, fix: targetFix(p, rawTarget) })
        const located = validateTargetConfigSync({
          vault_url: rawTarget.vault_url,
          certificate_name: rawTarget.certificate_name,
          ...(rawTarget.cloud === undefined ? {} : { cloud: rawTarget.cloud }),
        })
        if (Result.isSuccess(located)) certificate = located.success
        const rawMode = rawTarget.credential_mode ?? "default"
        if (typeof rawMode === "string" && (credentialModes as ReadonlyArray<string>).includes(rawMode))
          credentialMode = rawMode
      } else {
        target = shared(checked.success)
        certificate = target
        credentialMode = target.credentialMode
      }
      // The client id as configured, from an invalid target's own field too (as the CLI does): its
      // token file problem is said with the target's other problems.
      const clientId =
        target?.managedIdentityClientId ??
        (typeof rawTarget.managed_identity_client_id === "string" &&
        rawTarget.managed_identity_client_id.trim() !== ""
          ? rawTarget.managed_identity_client_id.trim()
          : undefined)
      if (
        credentialMode === "managed_identity" &&
        managedIdentityClientId === undefined &&
        clientId !== undefined
      ) {
        managedIdentityClientId = clientId
        managedIdentityClientIdAt = `${at}.target.credential_mode`
      }
      if (credentialMode !== undefined) {
        const mode = modes.get(credentialMode)
        if (mode === undefined) modes.set(credentialMode, { at: `${at}.target.credential_mode`, count: 1 })
        else mode.count++
      }
      if (certificate !== undefined) {
        const key = `${certificate.vaultUrl}/${certificate.certificateName.toLowerCase()}`
        const seen = targets.get(key)
        if (seen !== undefined)
          problems.push(
            problem(
              `${at}.target`,
              `deploys to the same certificate as deployments[${seen}] (${key})`,
              "deploy each Key Vault certificate from one deployment only",
            ),
          )
        else targets.set(key, i)
      }
    }
    const rawSource =
      typeof d.source === "object" && d.source !== null ? (d.source as Record<string, unknown>) : undefined
    let source: Source | undefined
    if (rawSource !== undefined) {
      if (typeof rawSource.pfx === "string") {
        if (rawSource.cert !== undefined || rawSource.key !== undefined || rawSource.chain !== undefined)
          problems.push(
            problem(`${at}.source`, "names both a PFX and PEM files", "give either pfx or cert/chain/key"),
          )
        const passwordEnv =
          typeof rawSource.pfx_password_env === "string" ? rawSource.pfx_password_env : undefined
        if (
          passwordEnv !== undefined &&
          /^[A-Za-z_][A-Za-z0-9_]*$/.test(passwordEnv) &&
          environmentVariable(passwordEnv, env) === undefined
        )
          problems.push(
            shownSecretVariable(passwordEnv) !== undefined
              ? problem(
                  `${at}.source.pfx_password_env`,
                  `the environment variable ${passwordEnv} is not set`,
                  `set ${passwordEnv} in the agent's environment (systemd EnvironmentFile, a Kubernetes secret) and restart the agent: it reads its environment at start, and a reload (SIGHUP) does not see a new variable`,
                )
              : problem(
                  `${at}.source.pfx_password_env`,
                  `the environment variable it names is not set (${passwordEnv.length} characters, not shown: a variable's name is written in upper case, and this may be the password itself)`,
                  "give the name of the variable that holds the password (e.g. PORTAL_PFX_PASSWORD), set it in the agent's environment (systemd EnvironmentFile, a Kubernetes secret) and restart the agent (a reload does not see a new variable); if the password itself was written here, change it",
                ),
          )
        source = { _tag: "Pfx", pfx: resolve(rawSource.pfx), passwordEnv }
      } else if (typeof rawSource.cert === "string") {
        source = {
          _tag: "Pem",
          cert: resolve(rawSource.cert),
          chain: typeof rawSource.chain === "string" ? resolve(rawSource.chain) : undefined,
          key: typeof rawSource.key === "string" ? resolve(rawSource.key) : undefined,
        }
      }
      const owner = sourceOwnerOf(rawSource.owner, `${at}.source.owner`, uidOf, problems)
      if (source !== undefined && owner !== undefined) source = { ...source, owner }
      for (const k of ["cert", "chain", "key", "pfx"]) {
        const value = rawSource[k]
        // Resolved against the configuration's directory, an empty path named that directory.
        if (typeof value === "string" && value.trim() === "")
          problems.push(
            problem(
              `${at}.source.${k}`,
              "is an empty path",
              k === "chain"
                ? "give the path of the chain file, or leave chain out when the cert file holds the chain"
                : `give the path of the ${k === "pfx" ? "PFX" : k === "key" ? "private key" : "certificate"} file`,
            ),
          )
        else if (typeof value === "string" && pathHoldsText(value, resolve))
          problems.push(
            problem(
              `${at}.source.${k}`,
              "holds text (PEM or base64, a certificate or key) instead of a file path; it is not shown here",
              "put the certificate or key in a file the agent can read and give that file's path",
            ),
          )
      }
      for (const k of Object.keys(rawSource)) {
        if (secretLookingSourceKey(k))
          problems.push(
            problem(
              `${at}.source.${k}`,
              "looks like a secret; the agent never reads secrets from its configuration",
              "put it in an environment variable and name it with pfx_password_env",
            ),
          )
      }
    }
    const rawPickup =
      typeof d.pickup === "object" && d.pickup !== null ? (d.pickup as Record<string, unknown>) : undefined
    for (const k of ["host", "servername"]) {
      const value = rawPickup?.[k]
      const wrong = typeof value === "string" ? hostProblem(value) : undefined
      if (wrong !== undefined) problems.push(problem(`${at}.pickup.${k}`, wrong.message, wrong.fix))
    }
    const pickup: Pickup | undefined =
      rawPickup !== undefined && typeof rawPickup.host === "string"
        ? {
            host: rawPickup.host,
            port: typeof rawPickup.port === "number" ? rawPickup.port : 443,
            servername: typeof rawPickup.servername === "string" ? rawPickup.servername : rawPickup.host,
          }
        : undefined
    if (source !== undefined)
      sources.push({
        index: i,
        ...(typeof d.name === "string" && deploymentNamePattern.test(d.name) ? { name: d.name } : {}),
        source,
      })
    if (target !== undefined && source !== undefined) {
      // content_type keep (the default) is left out, as before the field existed: a restart after
      // an upgrade finds the fingerprints it wrote, and its held outcomes with them.
      const { contentType, ...beforeContentType } = target
      // consumers is a set: its order in the file is no other configuration (sorted here; a target
      // without consumers has no key, so its fingerprint is the one written before they existed).
      const unordered = target.consumers === undefined ? {} : { consumers: [...target.consumers].sort() }
      // What the deployment writes, and nothing it only watches: pickup is left out, so adding or
      // changing a pickup check releases no held outcome (the source would be deployed again, over
      // another writer's newer version after a Superseded). A deployment without pickup has the
      // fingerprint it always had (JSON.stringify leaves an undefined pickup out).
      const written = {
        source,
        target: { ...(contentType === "keep" ? beforeContentType : target), ...unordered },
        certificateId,
        adopt,
      }
      const current = canonicalJson(written)
      const fingerprint = configFingerprintOf(current)
      const formerFingerprints = formerFingerprintsOf(written, pickup, current)
      deployments.push({
        name,
        source,
        target,
        certificateId,
        adopt,
        pickup,
        fingerprint,
        // The ones earlier agents wrote (pickup included, the host's collation): their records are
        // still this deployment's.
        ...(formerFingerprints === undefined ? {} : { formerFingerprints }),
      })
      deploymentsAt.push({ index: i, source, target, certificateId })
    }
  })
  // The variables each credential mode in use needs and the values it reads that cannot work (the
  // credentials package's rule, the one its credentials are made by). A missing variable is one
  // problem per mode, at its first deployment; a malformed value one problem, at the first
  // deployment it breaks, naming every mode it breaks (a proxy variable: all of them). Kept apart:
  // they stop `--check`, not the agent (its other deployments run).
  const deploymentsOf = (n: number) => `${n} deployment${n === 1 ? "" : "s"}`
  const environmentProblems: Array<ConfigProblem> = []
  const checkOnlyProblems: Array<ConfigProblem> = []
  const malformed = new Map<
    string,
    { at: string; fix: string; modes: Array<string>; expiredToken: boolean }
  >()
  const inUse = [...modes].filter(([mode]) => (credentialModes as ReadonlyArray<string>).includes(mode))
  for (const [mode, { at: first, count }] of inUse) {
    // managed_identity's token file is read by the AKS token exchange of a deployment with a client
    // id: without AZURE_CLIENT_ID, that is the one that configured managed_identity_client_id (the
    // others ask the managed identity endpoint), and its problems are said there.
    const at =
      mode === "managed_identity" &&
      managedIdentityClientIdAt !== undefined &&
      // Unset as @azure/identity tests it (empty): spaces are a value it would use.
      (env.AZURE_CLIENT_ID ?? "") === ""
        ? managedIdentityClientIdAt
        : first
    for (const p of credentialEnvironmentProblems(mode as CredentialMode, (name) => env[name], {
      checkFiles: true,
      tokenExpiry: true,
      managedIdentityClientId,
    })) {
      if (p.kind === "missing") {
        environmentProblems.push(
          problem(
            at,
            // Set to nothing or to spaces alone is said so (credentials' rule, as the CLI says it).
            `${mode} (used by ${deploymentsOf(count)}) needs ${missingVariablesInWords(p.variables, (name) => env[name])} in the agent's environment`,
            p.fix,
          ),
        )
        continue
      }
      const known = malformed.get(p.reason)
      const used = `${mode} (${deploymentsOf(count)})`
      if (known === undefined)
        malformed.set(p.reason, { at, fix: p.fix, modes: [used], expiredToken: p.expiredToken === true })
      else known.modes.push(used)
    }
  }
  for (const [reason, { at, fix, modes: broken, expiredToken }] of malformed)
    (expiredToken ? checkOnlyProblems : environmentProblems).push(
      problem(
        at,
        broken.length === inUse.length && inUse.length > 1
          ? `every credential mode in use cannot work: ${reason}`
          : `${broken.join(" and ")} cannot work: ${reason}`,
        fix,
      ),
    )
  const coreFields = new Set(problems.map((p) => p.field))
  for (const p of schemaTargetProblems) if (!coreFields.has(p.field)) problems.push(p)
  // The settings: those of a valid document, else each one that passes its own schema (the checks
  // across settings below run whatever else the file gets wrong, and skip a setting it refused).
  const judgedAlone = Result.isSuccess(decoded) ? undefined : settingsJudgedAlone(rawAgent)
  const agent: AgentSettingsInput =
    (Result.isSuccess(decoded) ? decoded.success.agent : judgedAlone?.settings) ?? {}
  const refused = (key: keyof AgentSettingsInput) => judgedAlone?.refused.has(key) === true
  const listenText = agent.listen ?? (typeof rawAgent.listen === "string" ? rawAgent.listen : defaults.listen)
  const listen = parseListen(listenText)
  if (listen === undefined)
    problems.push(
      problem(
        "agent.listen",
        `${quotedValue(listenText)} is not host:port`,
        "use for example 127.0.0.1:9464 or [::1]:9464",
      ),
    )
  const backoffBase = agent.backoff_base_seconds ?? defaults.backoffBaseSeconds
  const backoffMax = agent.backoff_max_seconds ?? defaults.backoffMaxSeconds
  // Not when either was refused: its own problem is reported, and a comparison would be with the default.
  if (backoffMax < backoffBase && !refused("backoff_base_seconds") && !refused("backoff_max_seconds"))
    problems.push(
      problem(
        "agent.backoff_max_seconds",
        `is ${backoffMax}, smaller than backoff_base_seconds (${backoffBase}${agent.backoff_base_seconds === undefined ? ", its default" : ""})`,
        "make it at least backoff_base_seconds",
      ),
    )
  for (const [key, bound] of Object.entries(secondsBounds)) {
    const value = rawAgent[key]
    if (typeof value !== "number") continue
    const wrong = !Number.isFinite(value)
      ? "not a finite number"
      : value < bound.min
        ? bound.tooSmall
        : bound.max !== undefined && value > bound.max.value
          ? bound.max.tooLarge
          : undefined
    if (wrong !== undefined) problems.push(problem(`agent.${key}`, `is ${value}: ${wrong}`, bound.fix))
  }
  const rawWorkers = rawAgent.material_workers
  if (
    rawWorkers !== undefined &&
    !(
      typeof rawWorkers === "number" &&
      Number.isInteger(rawWorkers) &&
      rawWorkers >= 0 &&
      rawWorkers <= maxMaterialWorkers
    )
  )
    problems.push(
      problem(
        "agent.material_workers",
        // JSON has no Infinity or NaN (YAML's .inf, .nan): JSON.stringify would say null.
        `is ${typeof rawWorkers === "number" && !Number.isFinite(rawWorkers) ? String(rawWorkers) : typeof rawWorkers === "string" ? quotedValue(rawWorkers) : (JSON.stringify(rawWorkers) ?? String(rawWorkers))}, not a whole number from 0 to ${maxMaterialWorkers}`,
        `give a whole number from 0 to ${maxMaterialWorkers} (0: every source is parsed on the main thread), or leave it out for the default (${defaultMaterialWorkers}: none)`,
      ),
    )
  // Without state_dir: the directory systemd made for the unit (StateDirectory= sets STATE_DIRECTORY,
  // the first of its paths), else kvdeploy-agent-state next to the configuration file.
  const systemdState = env.STATE_DIRECTORY?.split(":")[0]?.trim()
  // A certificate or key pasted as the directory would be logged as the state file's path and made
  // into directories named after it.
  // An empty one named the configuration file's directory (resolved against it), and one of spaces
  // a directory named by them: refused, as an empty source path is.
  const emptyStateDir = agent.state_dir !== undefined && agent.state_dir.trim() === ""
  if (emptyStateDir)
    problems.push(
      problem(
        "agent.state_dir",
        "is an empty path",
        "give the path of a directory for the agent's state (e.g. /var/lib/kvdeploy-agent), or leave state_dir out for the default (systemd's StateDirectory=, else kvdeploy-agent-state next to the configuration file)",
      ),
    )
  const pastedStateDir =
    !emptyStateDir && agent.state_dir !== undefined && pathHoldsText(agent.state_dir, resolve)
  if (pastedStateDir)
    problems.push(
      problem(
        "agent.state_dir",
        "holds text (PEM or base64, a certificate or key) instead of a directory's path; it is not shown here",
        "give the path of a directory for the agent's state (or leave state_dir out for the default), and keep certificates and keys in files given as a deployment's source",
      ),
    )
  const stateDir =
    (pastedStateDir || emptyStateDir ? undefined : agent.state_dir) ??
    (systemdState !== undefined && systemdState !== "" ? systemdState : defaults.stateDir)
  if (problems.length > 0)
    return Result.fail(
      new AgentConfigInvalid({
        path,
        problems: listedProblems([...problems, ...environmentProblems, ...checkOnlyProblems]),
        checkable: {
          sources,
          deployments: deploymentsAt,
          // A pasted or empty state_dir is not looked at (the default in its place would be judged instead).
          stateDir: pastedStateDir || emptyStateDir ? undefined : resolve(stateDir),
          listen,
        },
      }),
    )
  return Result.succeed({
    path,
    settings: {
      reconcileIntervalMs: (agent.reconcile_interval_seconds ?? defaults.reconcileIntervalSeconds) * 1000,
      concurrency: agent.concurrency ?? defaults.concurrency,
      vaultConcurrency: Math.min(
        agent.vault_concurrency ?? defaults.vaultConcurrency,
        agent.concurrency ?? defaults.concurrency,
      ),
      listenHost: listen?.host ?? "127.0.0.1",
      listenPort: listen?.port ?? 9464,
      stateDir: resolve(stateDir),
      shutdownGraceMs: (agent.shutdown_grace_seconds ?? defaults.shutdownGraceSeconds) * 1000,
      debounceMs: agent.debounce_ms ?? defaults.debounceMs,
      importsPerWindow: agent.vault_imports_per_window ?? defaults.importsPerWindow,
      readsPerWindow: agent.vault_reads_per_window ?? defaults.readsPerWindow,
      windowMs: (agent.vault_window_seconds ?? defaults.windowSeconds) * 1000,
      backoffBaseMs: backoffBase * 1000,
      backoffMaxMs: backoffMax * 1000,
      requestTimeoutMs: (agent.request_timeout_seconds ?? defaults.requestTimeoutSeconds) * 1000,
      recoverTimeoutMs: (agent.recover_timeout_seconds ?? defaults.recoverTimeoutSeconds) * 1000,
      vaultListMinDeployments: agent.vault_list_min_deployments ?? defaults.vaultListMinDeployments,
      materialWorkers: agent.material_workers ?? defaultMaterialWorkers,
    },
    deployments,
    environmentProblems,
    checkOnlyProblems,
  })
}

/** A read error's code in words, with the code (fsCodeInWords); a file over the read limit says the limit. */
const readErrorText = (code: string): string =>
  code === "EFBIG"
    ? "it is larger than 64 MiB (a configuration of 10,000 deployments is about 3 MB)"
    : code === "ENOTREG"
      ? "it is not a regular file (a FIFO, socket or device)"
      : fsCodeInWords(code)

/**
 * Aliases (`*name`) a configuration may hold: two per deployment of the largest configuration the
 * agent is sized for (10,000 deployments, each naming a shared target and, say, its tags). A chain
 * of aliases (an alias bomb) is refused by what it expands to (expandedValueLimit), not by this count.
 */
const maxAliases = 20_000

/**
 * Keys merges may copy in one load (js-yaml's maxTotalMergeKeys, 10,000 by default: a 5,000-deployment
 * file merging a two-key target into each was refused): twenty per deployment of 10,000.
 */
const maxTotalMergeKeys = 200_000

/**
 * The YAML 1.2 core schema with merge keys (`<<`). A merge copies the merged mapping's keys into
 * the mapping that names it; js-yaml bounds the keys copied in one load (maxTotalMergeKeys), and the
 * aliases it takes count towards maxAliases.
 */
const yamlSchema = CORE_SCHEMA.withTags(mergeTag)

/**
 * The values a loaded configuration may have, counting each alias's value again at every
 * use. A loaded document shares an anchored value between its aliases, so validating it
 * walks the value once per use: 100 aliases nested ten deep are 10^10 values to walk.
 * A document without aliases has at most one value per character of its text.
 */
const expandedValueLimit = (text: string): number => text.length + 100_000

/**
 * Walk `value` as validation does (aliases expanded): "cycle" when an alias stands inside
 * the value it names (js-yaml builds that value as a cyclic object, which validation would
 * walk forever), "expands" when the walk visits more than `limit` values.
 */
const aliasProblem = (value: unknown, limit: number): "cycle" | "expands" | undefined => {
  let visited = 0
  const onPath = new Set<object>()
  const stack: Array<{ readonly value: unknown } | { readonly leave: object }> = [{ value }]
  for (let step = stack.pop(); step !== undefined; step = stack.pop()) {
    if ("leave" in step) {
      onPath.delete(step.leave)
      continue
    }
    visited += 1
    if (visited > limit) return "expands"
    const v = step.value
    if (typeof v !== "object" || v === null) continue
    if (onPath.has(v)) return "cycle"
    onPath.add(v)
    stack.push({ leave: v })
    for (const item of Array.isArray(v) ? v : Object.values(v)) stack.push({ value: item })
  }
  return undefined
}

const yamlFixes: ReadonlyArray<readonly [RegExp, string]> = [
  [/maxAliases/, `write the values out, or use at most ${maxAliases.toLocaleString("en-US")} aliases`],
  [/unidentified alias/, "define the anchor (&name) before the alias (*name) that uses it"],
  [
    /unknown .*tag|explicit tag/,
    "remove the tag (the agent reads YAML 1.2 core values: strings, numbers, booleans, null, lists, maps)",
  ],
  [/complex keys/, "write the key as a plain string"],
  [/maxDepth/, "nest values at most 99 levels deep"],
  [
    /cannot merge mappings/,
    "a merge key (<<) takes a mapping, an alias of one (<<: *name) or a list of them (<<: [*a, *b])",
  ],
  [
    /maxTotalMergeKeys|merge keys/i,
    `write the values out: merge keys (<<) copy at most ${maxTotalMergeKeys.toLocaleString("en-US")} keys in all`,
  ],
  [
    /abnormal merge sequence size/,
    "merge at most 100 mappings in one list (<<: [*a, *b]), or write the values out",
  ],
]

const yamlFix = (reason: string): string =>
  yamlFixes.find(([pattern]) => pattern.test(reason))?.[1] ?? "fix the YAML syntax"

const invalid = (path: string, field: string, message: string, fix: string) =>
  Result.fail(new AgentConfigInvalid({ path, problems: [problem(field, message, fix)] }))

/**
 * Text that JSON.parse reads exactly as js-yaml would: an object at the top, printable ASCII
 * without tabs (js-yaml refuses characters that JSON strings may hold raw).
 */
const plainJsonObject = /^[\n\r ]*\{[\n\r\x20-\x7e]*$/
/**
 * The keys named in JSON text that JSON.parse accepted: outside its strings, such text has a colon
 * after each key and nowhere else. A scan, not a regular expression over every string (10,000
 * deployments: about 10 ms instead of 80).
 */
const keysInJsonText = (text: string): number => {
  let keys = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      // A backslash escapes the character after it.
      if (c === 0x5c) i += 1
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x3a) keys += 1
  }
  return keys
}
/** Deeper than this, js-yaml reads the text (it refuses nesting past its maxDepth, 100). */
const maxJsonDepth = 50

/**
 * Keys of `value` and of everything in it; undefined when it nests deeper than maxJsonDepth or
 * holds a number too large for a double (JSON.parse makes it Infinity, js-yaml keeps the text).
 */
const keyCount = (value: unknown, depth: number): number | undefined => {
  if (typeof value === "number") return Number.isFinite(value) ? 0 : undefined
  if (typeof value !== "object" || value === null) return 0
  if (depth > maxJsonDepth) return undefined
  let count = 0
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const inner = keyCount(value[i], depth + 1)
      if (inner === undefined) return undefined
      count += inner
    }
    return count
  }
  const record = value as Record<string, unknown>
  const keys = Object.keys(record)
  count = keys.length
  for (let i = 0; i < keys.length; i++) {
    const inner = keyCount(record[keys[i] as string], depth + 1)
    if (inner === undefined) return undefined
    count += inner
  }
  return count
}

/**
 * A configuration written as JSON (generated ones often are), read with JSON.parse: 10,000
 * deployments take js-yaml about 270 ms of a warm process, and several times that at start-up.
 * Only when the result is the one js-yaml would give: see plainJsonObject; no key given twice in
 * an object (JSON.parse keeps the last, js-yaml refuses the file with the key's line), which holds
 * when the text names as many keys as the value has; nesting under js-yaml's limit. Anything else,
 * and every error, is js-yaml's to read and report.
 */
const readJsonDocument = (text: string): { readonly value: unknown } | undefined => {
  if (!plainJsonObject.test(text)) return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  const keys = keyCount(value, 0)
  if (keys === undefined) return undefined
  return keysInJsonText(text) === keys ? { value } : undefined
}

/**
 * Parse YAML text (JSON is YAML too) and validate it; YAML syntax errors are listed with their line.
 * js-yaml with the YAML 1.2 core schema (no timestamps, no custom tags) and merge keys (`<<: *name`,
 * what operators write to share a target between deployments; a key written beside it wins, as
 * YAML says): a duplicate key is an error, not a silent override. JSON text is read with JSON.parse
 * when that gives what js-yaml would (readJsonDocument). 10,000 deployments written as JSON
 * load and validate in about 0.2 s of a warm process (0.45 s instead of 1.1 s cold).
 */
export const parseAgentConfig = (
  text: string,
  path: string,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
  userIdOf: (name: string) => UserLookup = systemUserIdOf,
): Result.Result<AgentConfig, AgentConfigInvalid> =>
  Result.flatMap(readAgentDocument(text, path), (loaded) =>
    validateAgentConfig(loaded, path, baseDir, env, userIdOf),
  )

/** The configuration text as one decoded document (YAML or JSON), before validation. */
const readAgentDocument = (text: string, path: string): Result.Result<unknown, AgentConfigInvalid> => {
  const json = readJsonDocument(text)
  let documents: Array<unknown>
  try {
    documents =
      json !== undefined ? [json.value] : loadAll(text, { maxAliases, maxTotalMergeKeys, schema: yamlSchema })
  } catch (e) {
    // js-yaml names what it stopped at whole (an unknown tag, an alias): key text written there is
    // not repeated.
    const reason = withoutKeyText(e instanceof YAMLException ? e.reason : String(e))
    const line = e instanceof YAMLException && e.mark !== undefined ? e.mark.line + 1 : "?"
    // A key given twice in one mapping: js-yaml stops at its second occurrence, which names it.
    const duplicated =
      reason === "duplicated mapping key" && e instanceof YAMLException && e.mark !== undefined
        ? /^["']?([A-Za-z0-9_.-]{1,64})["']?(?=\s*:)/.exec(
            text.slice(e.mark.position, e.mark.position + 80),
          )?.[1]
        : undefined
    return duplicated === undefined
      ? invalid(path, `(yaml) line ${line}`, reason, yamlFix(reason))
      : invalid(
          path,
          `(yaml) line ${line}`,
          `duplicated mapping key ${quotedValue(duplicated)}`,
          `give ${quotedValue(duplicated)} once in this mapping (remove or rename one of the two)`,
        )
  }
  // No document, or one that is only `---`, `~` or `null`: nothing configured.
  if (documents.length === 0 || (documents.length === 1 && documents[0] === null))
    return invalid(
      path,
      "(file)",
      "is empty: it holds no YAML document",
      "write the agent's configuration (docs/agent.md, Configuration reference; kvdeploy-agent --print-schema prints its JSON Schema)",
    )
  if (documents.length > 1)
    return invalid(
      path,
      "(yaml) documents",
      `the file holds ${documents.length} YAML documents (separated by ---); the agent reads one`,
      "keep one document: remove the --- line and the document after it, or merge the two",
    )
  const loaded = documents[0]
  const limit = expandedValueLimit(text)
  // JSON.parse builds a tree, and YAML text without a "*" holds no alias: nothing to walk.
  const aliases = json === undefined && text.includes("*") ? aliasProblem(loaded, limit) : undefined
  if (aliases === "cycle")
    return invalid(
      path,
      "(yaml) aliases",
      "an alias stands inside the value its anchor names (a value that contains itself)",
      "an anchored value cannot hold its own alias (*name): write that part out",
    )
  if (aliases === "expands")
    return invalid(
      path,
      "(yaml) aliases",
      `expand to more than ${limit} values, far more than the text holds (aliases of aliases)`,
      "write the shared values out instead of nesting aliases",
    )
  return Result.succeed(loaded)
}

/**
 * Validate a decoded document with the user names it gives (`source.owner`) looked up by
 * `lookUpUserId`, off the event loop and at most 4 at a time: a first validation answers from what
 * is known and records the names it asks for; when it asked for any, they are looked up and the
 * document is validated again with their answers.
 */
const validateWithUserLookups = (
  loaded: unknown,
  path: string,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
): Effect.Effect<Result.Result<AgentConfig, AgentConfigInvalid>> =>
  Effect.gen(function* () {
    const known = new Map<string, UserLookup>()
    const asked = new Set<string>()
    const userIdOf = (name: string): UserLookup => {
      const found = known.get(name)
      if (found !== undefined) return found
      asked.add(name)
      return "unavailable"
    }
    const first = validateAgentConfig(loaded, path, baseDir, env, userIdOf)
    if (asked.size === 0) return first
    const answers = yield* Effect.forEach(
      asked,
      (name) => Effect.map(lookUpUserId(name), (uid) => [name, uid] as const),
      { concurrency: 4 },
    )
    for (const [name, uid] of answers) known.set(name, uid)
    return validateAgentConfig(loaded, path, baseDir, env, userIdOf)
  })

/** Read and validate the configuration file. */
/** The largest configuration read: 10,000 deployments take about 3 MB of YAML. */
const maxConfigBytes = 64 * 1024 * 1024

/**
 * The configuration file's text, read to its end or refused past 64 MiB (core's readAtMost: a file
 * that says its size is 0, as those of /proc do, is read until its end or the bound; a device such
 * as /dev/zero, refused now as no regular file, was read until the string could grow no more).
 */
const readConfigText = (path: string): Effect.Effect<string, unknown> =>
  Effect.try({ try: () => openRegularConfig(path), catch: (e) => e }).pipe(
    Effect.flatMap((fd) =>
      readAtMost(
        NodeStream.fromReadable<Uint8Array, unknown>({
          evaluate: () => createReadStream("", { fd }),
          onError: (e) => e,
        }),
        maxConfigBytes,
      ),
    ),
    Effect.flatMap((read) =>
      read.over
        ? Effect.fail({ code: "EFBIG" })
        : Effect.succeed(
            Buffer.from(read.bytes.buffer, read.bytes.byteOffset, read.bytes.byteLength).toString("utf8"),
          ),
    ),
  )

/**
 * The configuration file opened, a regular file only (a directory as EISDIR, as a read of it says;
 * anything else as ENOTREG). Opened non-blocking and judged by its own fstat: a FIFO with no writer
 * blocked the open in one of libuv's threads for good, and Node's exit waits for that thread, so
 * SIGTERM left the agent (and --check) alive until SIGKILL. A configuration is read again at each
 * reload, which a pipe cannot give; a device (/dev/zero) holds no configuration either.
 */
const openRegularConfig = (path: string): number => {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  try {
    const stats = fstatSync(fd)
    if (stats.isFile()) return fd
    throw Object.assign(new Error(`not a regular file: ${path}`), {
      code: stats.isDirectory() ? "EISDIR" : "ENOTREG",
    })
  } catch (e) {
    closeSync(fd)
    throw e
  }
}

/** Read and validate the configuration at `path`; `origin`, where the path came from, shapes the fix of a file that cannot be read. */
export const loadAgentConfig = (
  path: string,
  origin?: ConfigPathOrigin,
): Effect.Effect<AgentConfig, AgentConfigInvalid> =>
  Effect.map(loadAgentConfigUnless(path, undefined, origin), (loaded) => loaded as AgentConfig)

/**
 * Read the configuration file; answer "unchanged" when its text is the one
 * `textSha256` was taken of (nothing to parse or validate: the result would be
 * the same; 10,000 deployments take seconds of CPU to parse), else validate it.
 */
export const loadAgentConfigUnless = (
  path: string,
  textSha256: string | undefined,
  origin?: ConfigPathOrigin,
): Effect.Effect<AgentConfig | "unchanged", AgentConfigInvalid> =>
  Effect.gen(function* () {
    if (path.trim() === "")
      return yield* new AgentConfigInvalid({
        path,
        problems: [
          problem(
            "(file)",
            "is an empty path",
            "give the configuration file with --config FILE (or $KVDEPLOY_AGENT_CONFIG)",
          ),
        ],
      })
    const absolute = resolvePath(path)
    const text = yield* readConfigText(absolute).pipe(
      Effect.mapError(
        (e) =>
          new AgentConfigInvalid({
            path: absolute,
            problems: [
              problem(
                "(file)",
                `cannot be read: ${typeof (e as NodeJS.ErrnoException).code === "string" ? readErrorText((e as NodeJS.ErrnoException).code as string) : String(e)}`,
                (e as NodeJS.ErrnoException).code === "ENOTREG"
                  ? "give the configuration file itself, a regular file: the agent reads it again at each reload (SIGHUP), which a pipe cannot give, and a FIFO with no writer holds it for good"
                  : unreadableConfigFix(absolute, origin),
              ),
            ],
          }),
      ),
    )
    const sha256 = createHash("sha256").update(text).digest("hex")
    if (sha256 === textSha256) return "unchanged" as const
    const loaded = yield* Effect.fromResult(readAgentDocument(text, absolute))
    const config = yield* Effect.flatMap(
      validateWithUserLookups(loaded, absolute, dirname(absolute), process.env),
      Effect.fromResult,
    )
    return { ...config, textSha256: sha256 }
  })

/** The configuration's JSON Schema, generated from the Effect Schema (published as schema/agent-config.schema.json). */
export const jsonSchema = (): Record<string, unknown> => {
  const document = Schema.toJsonSchemaDocument(AgentConfigSchema, { onExcessProperty: "error" })
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: "https://kvdeploy.dev/schema/agent-config.schema.json",
    ...document.schema,
    // Keys of the operator's own at the top (anchors), which the agent ignores.
    patternProperties: { [extensionKey.source]: {} },
    ...(Object.keys(document.definitions).length > 0 ? { $defs: document.definitions } : {}),
  }
}
