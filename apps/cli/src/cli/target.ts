/**
 * The target: certctl configuration fields from `--config` and/or flags,
 * validated by core's `validateTargetConfig`. Every problem is reported with
 * where it came from (the flag, or the file and field). Usage problems exit 2
 * before any vault is contacted.
 */
import {
  CredentialMode,
  fsErrorReason,
  quotedValue,
  shownPath,
  type TargetConfig,
  validateTargetConfigSync,
} from "@kvdeploy/core"
import { knownIdentitySecrets } from "@kvdeploy/credentials/tokenErrors"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import { type CliProblem, ExitCode, type Problem, usage, usageOne } from "./problems.js"
import { fsErrorFix, readPath } from "./sources.js"
import { credentialVariableProblems } from "./vault.js"

/** The credential modes a target may name. */
const credentialModes: ReadonlySet<string> = new Set(CredentialMode.literals)

export interface TargetFlags {
  readonly config: Option.Option<string>
  readonly vaultUrl: Option.Option<string>
  readonly credentialMode: Option.Option<string>
  readonly managedIdentityClientId: Option.Option<string>
}

export interface TargetOverrides {
  readonly name?: Option.Option<string>
  readonly tags?: ReadonlyArray<string>
  readonly onSoftDeleted?: Option.Option<string>
  readonly pfxEncoding?: Option.Option<string>
  readonly contentType?: Option.Option<string>
  /** `--consumer` values (each may be a comma list): they replace the file's consumers. */
  readonly consumers?: ReadonlyArray<string>
}

const flagOfField: Readonly<Record<string, string>> = {
  vault_url: "--vault-url",
  certificate_name: "--name",
  tags: "--tag",
  credential_mode: "--credential-mode",
  managed_identity_client_id: "--managed-identity-client-id",
  on_soft_deleted: "--on-soft-deleted",
  pfx_encoding: "--pfx-encoding",
  content_type: "--content-type",
  consumers: "--consumer",
}

/** A key given twice in JSON text, as js-yaml reports it (with its line), or undefined. */
const duplicateKey = async (text: string): Promise<string | undefined> => {
  const { load, YAMLException } = await import("js-yaml")
  try {
    load(text)
    return undefined
  } catch (e) {
    // Only the duplicate is judged here: JSON.parse has read the text already.
    if (e instanceof YAMLException && /duplicated mapping key/.test(e.reason)) {
      if (e.mark === undefined) return "a key is given twice"
      // js-yaml marks the second one's first character, after its quote: the key named (a file written
      // on one line, as `jq -c` writes it, is all line 1), unless it reads as a secret (quotedValue).
      const key = /^"?((?:[^"\\]|\\.)*)"/.exec(text.slice(e.mark.position))?.[1]
      const shown = key === undefined ? undefined : quotedValue(JSON.parse(`"${key}"`) as string)
      const named = shown?.startsWith('"') === true ? `the key ${shown}` : "a key"
      return `${named} is given twice (line ${e.mark.line + 1}, column ${e.mark.column + 1})`
    }
    return undefined
  }
}

/**
 * JSON.parse's complaint about `text`, where it is, without the text around it: for an unexpected
 * token, V8 quotes about ten characters either side (`..."assword": 'Sup3rSecr"...`), which may be a
 * secret written in the file by mistake; the line and column say where to look instead.
 */
export const jsonSyntaxError = (text: string, message: string): string => {
  const at = /^(.*?) in JSON at position (\d+)(?: \(line (\d+) column (\d+)\))?$/s.exec(message)
  if (at !== undefined && at !== null) {
    const position = Number(at[2])
    const line = at[3] ?? String(text.slice(0, position).split("\n").length)
    const column = at[4] ?? String(position - text.lastIndexOf("\n", position - 1))
    return `${at[1]} (line ${line}, column ${column})`
  }
  const quoted = /^(Unexpected token '.*?'), (\.\.\.)?"(.*)"(?:\.\.\.)? is not valid JSON$/s.exec(message)
  if (quoted !== null) {
    const [, what = "", cut, excerpt = ""] = quoted
    const start = text.indexOf(excerpt)
    // V8 quotes from 10 characters before the token when it cuts the text, else from its start.
    const position = start < 0 ? undefined : cut === undefined ? undefined : start + 10
    if (position === undefined)
      return start < 0 ? what : `${what} (line ${text.slice(0, start).split("\n").length} or after)`
    const line = text.slice(0, position).split("\n").length
    return `${what} (line ${line}, column ${position - text.lastIndexOf("\n", position - 1)})`
  }
  // Other complaints (the end of the input, say) quote nothing; one that would is not shown.
  return /"/.test(message) ? "a syntax error" : message
}

/**
 * The keys of `text` when it is no JSON but reads as a YAML mapping (`vault_url: https://…` lines,
 * or `{ vault_url: https://… }` in flow style, as the agent's configuration is written), or as a
 * list of one (a deployment's `- vault_url: …` copied with its dash), else undefined: a target file
 * is JSON, and an operator who copied a deployment's target block out of the agent's YAML is told
 * so, not shown a token. Only the keys are given back (never a value: a file may hold a secret by
 * mistake). Broken JSON is no YAML either, so it keeps JSON's syntax error.
 */
const yamlMappingKeys = async (
  text: string,
): Promise<{ readonly keys: ReadonlyArray<string>; readonly listed: boolean } | undefined> => {
  // JSON with a slip (a trailing comma) reads as YAML's flow style too: a text whose keys are
  // quoted as JSON's are is JSON meant, and keeps JSON's error with its line and column.
  if (/^\s*[[{]/.test(text) && /"[^"\n]*"\s*:/.test(text)) return undefined
  const { load, CORE_SCHEMA } = await import("js-yaml")
  const isMapping = (v: unknown): v is object => typeof v === "object" && v !== null && !Array.isArray(v)
  try {
    const document: unknown = load(text, { schema: CORE_SCHEMA })
    if (isMapping(document)) return { keys: Object.keys(document), listed: false }
    if (Array.isArray(document) && document.length === 1 && isMapping(document[0]))
      return { keys: Object.keys(document[0]), listed: true }
    return undefined
  } catch {
    return undefined
  }
}

/** A YAML target file's keys as shown: each that is written as a target's field names are, the first 8. */
const shownKeys = (keys: ReadonlyArray<string>): string => {
  const fieldLike = keys.filter((k) => /^[a-z][a-z0-9_]{0,63}$/.test(k))
  const shown = fieldLike.slice(0, 8).join(", ")
  return fieldLike.length === 0 ? "" : ` (keys ${shown}${fieldLike.length > 8 ? ", …" : ""})`
}

/** Read and parse a JSON target file. */
export const readConfigFile = (
  path: string,
  field = "--config",
): Effect.Effect<Record<string, unknown>, CliProblem> =>
  Effect.gen(function* () {
    const read = yield* readPath(path).pipe(
      Effect.mapError((e) =>
        usageOne(
          field,
          `${shownPath(path)}: ${fsErrorReason(e)}`,
          fsErrorFix(e, "check the path of the target file"),
        ),
      ),
    )
    if (read.over)
      return yield* usageOne(
        field,
        `${shownPath(path)} is larger than 1 MiB`,
        "give the target file (a JSON object of a few fields)",
      )
    // A byte order mark, as some editors write, is not part of the JSON.
    const text = Buffer.from(read.bytes)
      .toString("utf8")
      .replace(/^\uFEFF/, "")
    // An empty file (a `>` that truncated it, a copy that failed) is said to be empty, not "not valid
    // JSON: Unexpected end of JSON input".
    if (text.trim() === "")
      return yield* usageOne(
        field,
        `${shownPath(path)} is empty`,
        'write the target as one JSON object: { "vault_url": "https://NAME.vault.azure.net", "certificate_name": "NAME" } (`kvdeploy emulator --write-config FILE` writes one for the emulator)',
      )
    const parsed = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (e) => e as Error,
    }).pipe(
      Effect.catch((e) =>
        Effect.flatMap(
          Effect.promise(() => yamlMappingKeys(text)),
          (yaml) =>
            Effect.fail(
              yaml === undefined
                ? usageOne(
                    field,
                    `${shownPath(path)} is not valid JSON: ${jsonSyntaxError(text, e.message)}`,
                    "fix the JSON syntax (the file must be one JSON object)",
                  )
                : usageOne(
                    field,
                    `${shownPath(path)} is YAML${yaml.listed ? ", a list of one mapping" : ""}${shownKeys(yaml.keys)}, and a target file is JSON`,
                    'write the same fields as one JSON object: { "vault_url": "https://NAME.vault.azure.net", "certificate_name": "NAME" } (the agent\'s configuration is the file written in YAML; a deployment\'s target there takes these fields)',
                  ),
            ),
        ),
      ),
    )
    // JSON.parse keeps the last of a key given twice; js-yaml (JSON is YAML) names it and its line.
    const duplicate = yield* Effect.promise(() => duplicateKey(text))
    if (duplicate !== undefined)
      return yield* usageOne(
        field,
        `${shownPath(path)}: ${duplicate}`,
        "give each key once (JSON keeps only the last, silently)",
      )
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return yield* usageOne(
        field,
        `${shownPath(path)} is not a JSON object`,
        'write the target as { "vault_url": ..., "certificate_name": ... }',
      )
    }
    return parsed as Record<string, unknown>
  })

/** Parse `--tag k=v` values. */
export const parseTagFlags = (
  values: ReadonlyArray<string>,
): { readonly tags: Record<string, string>; readonly problems: ReadonlyArray<Problem> } => {
  const tags: Record<string, string> = {}
  const problems: Array<Problem> = []
  for (const value of values) {
    const at = value.indexOf("=")
    if (at <= 0) {
      problems.push({
        field: "--tag",
        message: `${quotedValue(value)} is not KEY=VALUE`,
        fix: "write --tag env=production",
      })
      continue
    }
    const key = value.slice(0, at)
    if (Object.hasOwn(tags, key)) {
      problems.push({
        field: "--tag",
        message: `the key "${key}" is given twice`,
        fix: "give each tag key once",
      })
    }
    // Defined, not assigned: a key such as "__proto__" is a tag like any other.
    Object.defineProperty(tags, key, {
      value: value.slice(at + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    })
  }
  return { tags, problems }
}

/**
 * The target, resolved as `resolveTarget` does, after a command's own flags were judged: their
 * problems (`list --expiring-within 3x`, `versions --limit x`) and the target's are listed in one
 * usage error, not the flag's alone until the next run finds the target's. Without flag problems,
 * `resolveTarget`'s answer as it is; a failure that is not the input's (exit 1) stands alone.
 */
export const resolveTargetAfterFlags = (
  flagProblems: ReadonlyArray<Problem>,
  flags: TargetFlags,
  overrides: TargetOverrides,
  options: { readonly requireName: boolean } = { requireName: true },
): ReturnType<typeof resolveTarget> =>
  Effect.gen(function* () {
    if (flagProblems.length === 0) return yield* resolveTarget(flags, overrides, options)
    const target = yield* Effect.result(resolveTarget(flags, overrides, options))
    if (target._tag === "Failure" && target.failure.exitCode !== ExitCode.usage) return yield* target.failure
    const problems = [...flagProblems, ...(target._tag === "Failure" ? target.failure.problems : [])]
    const [only] = problems
    return yield* problems.length === 1 && only !== undefined
      ? usage(`${only.field}: ${only.message}`, problems)
      : usage(`the input has ${problems.length} problems`, problems)
  })

/**
 * Build the raw configuration (file fields, overridden by flags) and the
 * place each field came from, then validate it. Every problem found is
 * listed in one usage error: malformed `--tag` values, a missing vault URL or
 * certificate name, and whatever validation finds in the other fields. A target
 * file that cannot be read or parsed is reported on its own (there are no
 * fields to judge).
 */
export const resolveTarget = (
  flags: TargetFlags,
  overrides: TargetOverrides,
  options: { readonly requireName: boolean } = { requireName: true },
): Effect.Effect<
  {
    readonly config: TargetConfig
    readonly raw: Record<string, unknown>
    /**
     * Where the certificate name came from, as a problem's field names it: `--name`, or the target
     * file's `certificate_name` (as its other fields are named).
     */
    readonly nameField: string
  },
  CliProblem
> =>
  Effect.gen(function* () {
    const configPath = Option.getOrUndefined(flags.config)
    const raw: Record<string, unknown> =
      configPath === undefined ? {} : { ...(yield* readConfigFile(configPath)) }
    const fromFlag = new Set<string>()
    /** The tag keys `--tag` gave (a problem of another tag is the file's). */
    const flagTags = new Set<string>()
    const set = (field: string, value: Option.Option<unknown> | undefined) => {
      if (value !== undefined && Option.isSome(value)) {
        raw[field] = value.value
        fromFlag.add(field)
      }
    }
    set("vault_url", flags.vaultUrl)
    set("credential_mode", flags.credentialMode)
    set("managed_identity_client_id", flags.managedIdentityClientId)
    set("certificate_name", overrides.name)
    set("on_soft_deleted", overrides.onSoftDeleted)
    set("pfx_encoding", overrides.pfxEncoding)
    set("content_type", overrides.contentType)
    if (overrides.consumers !== undefined && overrides.consumers.length > 0) {
      raw.consumers = overrides.consumers.flatMap((value) => value.split(",").map((name) => name.trim()))
      fromFlag.add("consumers")
    }
    /** Problems found before validation, and the fields they are about (validation's own words about those are dropped). */
    const early: Array<Problem> = []
    const reported = new Set<string>()
    if (overrides.tags !== undefined && overrides.tags.length > 0) {
      // The well-formed tags are validated too, so a malformed one does not hide their problems
      // (a reserved or secret-looking key) until the next run.
      const parsed = parseTagFlags(overrides.tags)
      early.push(...parsed.problems)
      const fileTags =
        typeof raw.tags === "object" && raw.tags !== null ? (raw.tags as Record<string, unknown>) : {}
      raw.tags = { ...fileTags, ...parsed.tags }
      for (const key of Object.keys(parsed.tags)) flagTags.add(key)
      if (Object.keys(fileTags).length === 0) fromFlag.add("tags")
    }
    if (configPath === undefined && raw.vault_url === undefined) {
      early.push({
        field: "--vault-url",
        message: "is missing",
        fix: "give --vault-url https://NAME.vault.azure.net, or --config target.json",
      })
      reported.add("vault_url")
    }
    // Commands that work on the whole vault (list, doctor) validate with a placeholder name.
    const placeholderName = !options.requireName && raw.certificate_name === undefined
    if (placeholderName) raw.certificate_name = "kvdeploy-placeholder"
    if (options.requireName && raw.certificate_name === undefined) {
      early.push({
        field: configPath === undefined ? "--name" : `${shownPath(configPath)}: certificate_name`,
        message: "is missing",
        fix: "give --name NAME (1-127 of A-Z a-z 0-9 -), or certificate_name in the target file",
      })
      reported.add("certificate_name")
    }
    // Fixes name the flags that gave a field (--consumer, --content-type), not the file's field.
    // A tag value holding the identity's secret (AZURE_CLIENT_SECRET, say) is refused without being shown.
    const validated = validateTargetConfigSync(raw, {
      fromFlags: fromFlag,
      tagsFromFlags: flagTags,
      knownSecrets: knownIdentitySecrets(process.env),
    })
    const problems = [...early]
    if (Result.isFailure(validated)) {
      for (const p of validated.failure.problems) {
        // A list's item (consumers[1]) is its field's.
        const top = p.field.split(/[.[]/)[0] ?? p.field
        if (reported.has(top)) continue
        const flag = Object.hasOwn(flagOfField, top) ? flagOfField[top] : undefined
        const tagKey =
          top === "tags" && p.field.startsWith("tags.") ? p.field.slice("tags.".length) : undefined
        const where =
          tagKey !== undefined && flagTags.has(tagKey)
            ? `--tag ${tagKey}`
            : top === "tags" && p.field === "tags" && flagTags.size > 0 && !fromFlag.has("tags")
              ? `${shownPath(String(configPath))}: tags, with --tag`
              : fromFlag.has(top) && flag !== undefined
                ? // A list's item from a flag: the message quotes the value given.
                  `${flag}${p.field.length > top.length && p.field[top.length] === "." ? ` ${p.field.slice(top.length + 1)}` : ""}`
                : configPath === undefined
                  ? p.field
                  : `${shownPath(configPath)}: ${p.field}`
        problems.push({ field: where, message: p.message, fix: p.fix })
      }
    }
    if (problems.length > 0 || Result.isFailure(validated)) {
      // The credential mode's variables are listed too when the mode itself is valid: a bad --tag
      // hid a missing AZURE_CLIENT_SECRET until the next run.
      const mode = raw.credential_mode ?? "default"
      const environment =
        typeof mode === "string" &&
        credentialModes.has(mode) &&
        // Judged by core's own field name: a problem's field starts with the file's path, which may
        // hold "credential_mode" itself.
        !(
          Result.isFailure(validated) && validated.failure.problems.some((p) => p.field === "credential_mode")
        )
          ? yield* credentialVariableProblems({
              credentialMode: mode as TargetConfig["credentialMode"],
              // The configured client id, as for a valid target: managed identity's AKS token exchange
              // reads the token file with it, and its file is judged then.
              ...(typeof raw.managed_identity_client_id === "string" &&
              raw.managed_identity_client_id.trim() !== ""
                ? { managedIdentityClientId: raw.managed_identity_client_id.trim() }
                : {}),
            })
          : { problems: [], summary: undefined }
      const [only] = problems
      const all = [...problems, ...environment.problems]
      // A single problem found before validation is its own title ("--vault-url: is missing").
      return yield* all.length === 1 && only !== undefined && early.length === 1
        ? usage(`${only.field}: ${only.message}`, all)
        : usage(
            `the target is invalid (${problems.length} problem${problems.length === 1 ? "" : "s"})${environment.summary === undefined ? "" : `; ${environment.summary}`}`,
            all,
          )
    }
    if (placeholderName) delete raw.certificate_name
    const nameField =
      configPath === undefined || fromFlag.has("certificate_name")
        ? "--name"
        : `${shownPath(configPath)}: certificate_name`
    return { config: validated.success, raw, nameField }
  })
