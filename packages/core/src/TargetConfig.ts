/**
 * Target configuration (the certctl contract) as an Effect Schema, and its
 * validation: every problem is collected with the field it concerns and the
 * fix, never only the first one; secret values are never echoed.
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { closest, distance } from "fastest-levenshtein"
import { Consumer, consumerLabels, consumerNames } from "./consumers.js"
import { ContentTypeSetting } from "./contentType.js"
import {
  holdsEncodedBase64,
  keyInField,
  looksLikeDerBase64,
  quotedValue,
  shownPath,
  withoutSecretValues,
} from "./shownValues.js"
import { isReservedTagKey, MAX_OPERATOR_TAGS, RESERVED_TAG_KEYS } from "./tags.js"

// ---------------------------------------------------------------------------
// The validated configuration
// ---------------------------------------------------------------------------

export const CloudName = Schema.Literals(["AzurePublic", "AzureUSGovernment", "AzureChina", "Custom"])
export type CloudName = typeof CloudName.Type

/** The cloud a vault lives in: selects the Entra authority host and the Key Vault resource (token audience). */
export const Cloud = Schema.Struct({
  name: CloudName,
  /** DNS suffix of vault hosts, without a leading dot (`vault.azure.net`). */
  vaultDnsSuffix: Schema.String,
  /** Entra ID authority host, an https origin (`https://login.microsoftonline.com`). */
  authorityHost: Schema.String,
  /** Key Vault resource for tokens (`https://vault.azure.net`). */
  keyVaultResource: Schema.String,
})
export type Cloud = typeof Cloud.Type

export const CredentialMode = Schema.Literals([
  "default",
  "managed_identity",
  "client_secret",
  "workload_identity",
])
export type CredentialMode = typeof CredentialMode.Type

export const OnSoftDeleted = Schema.Literals(["fail", "recover"])
export type OnSoftDeleted = typeof OnSoftDeleted.Type

export const PfxEncodingSetting = Schema.Literals(["modern", "legacy"])

export const TargetConfig = Schema.Struct({
  /** Normalised: `https://host[:port]`, no trailing slash, no `:443`. */
  vaultUrl: Schema.String,
  /** The vault name (first DNS label), or the loopback host for a custom cloud. */
  vaultName: Schema.String,
  certificateName: Schema.String,
  /** Operator tags (reserved keys excluded). */
  tags: Schema.Record(Schema.String, Schema.String),
  credentialMode: CredentialMode,
  managedIdentityClientId: Schema.optional(Schema.String),
  onSoftDeleted: OnSoftDeleted,
  pfxEncoding: PfxEncodingSetting,
  /** The backing secret's content type an import writes: `keep` what the vault serves (default), `pkcs12` or `pem`. */
  contentType: ContentTypeSetting,
  /**
   * The services that read the certificate from the vault (`front_door`, `application_gateway`,
   * `app_service`): preflight refuses what they would not take. Absent when the target names none.
   */
  consumers: Schema.optional(Schema.Array(Consumer)),
  cloud: Cloud,
})
export type TargetConfig = typeof TargetConfig.Type

export const ConfigProblem = Schema.Struct({
  field: Schema.String,
  message: Schema.String,
  fix: Schema.String,
})
export type ConfigProblem = typeof ConfigProblem.Type

/** The configuration is not usable; `problems` lists every issue found. */
export class ConfigInvalid extends Schema.TaggedError<ConfigInvalid>()("ConfigInvalid", {
  problems: Schema.Array(ConfigProblem),
}) {
  override get message(): string {
    return this.problems.map((p) => `${p.field}: ${p.message} (fix: ${p.fix})`).join("; ")
  }
}

// ---------------------------------------------------------------------------
// Known clouds
// ---------------------------------------------------------------------------

/** A cloud kvdeploy knows by name: its vaults' suffix selects it (a `vault_url` with no `cloud` block). */
export type KnownCloudName = Exclude<CloudName, "Custom">
export type KnownCloud = Cloud & { readonly name: KnownCloudName }

export const knownClouds: ReadonlyArray<KnownCloud> = [
  {
    name: "AzurePublic",
    vaultDnsSuffix: "vault.azure.net",
    authorityHost: "https://login.microsoftonline.com",
    keyVaultResource: "https://vault.azure.net",
  },
  {
    name: "AzureUSGovernment",
    vaultDnsSuffix: "vault.usgovcloudapi.net",
    authorityHost: "https://login.microsoftonline.us",
    keyVaultResource: "https://vault.usgovcloudapi.net",
  },
  {
    name: "AzureChina",
    vaultDnsSuffix: "vault.azure.cn",
    authorityHost: "https://login.chinacloudapi.cn",
    keyVaultResource: "https://vault.azure.cn",
  },
]

/**
 * The other names of each known cloud.
 * - `names`: what `cloud.name` may say, exactly (case as written, like every setting of the file; a
 *   name that differs only in case is refused with the right one): first the one messages suggest,
 *   then the Azure CLI's (`az cloud show --query name`), @azure/identity's `AzureAuthorityHosts`
 *   keys, the Azure SDK for Go's, and kvdeploy's own (`kvdeploy validate` prints it).
 * - `authorityHosts`: the cloud's Entra ID authority host and its aliases, as MSAL's instance
 *   discovery metadata lists them (@azure/msal-common `AuthorityMetadata`: one entry per cloud,
 *   whose aliases issue the same tokens). MSAL's separate `login-us.microsoftonline.com` entry is
 *   its own cloud to MSAL, so it is not taken as an alias here.
 */
export const knownCloudAliases: Readonly<
  Record<
    KnownCloudName,
    { readonly names: ReadonlyArray<string>; readonly authorityHosts: ReadonlyArray<string> }
  >
> = {
  AzurePublic: {
    names: ["AzurePublicCloud", "AzureCloud", "AzurePublic"],
    authorityHosts: [
      "https://login.microsoftonline.com",
      "https://login.windows.net",
      "https://login.microsoft.com",
      "https://sts.windows.net",
    ],
  },
  AzureUSGovernment: {
    names: ["AzureUSGovernment", "AzureGovernment", "AzureUSGovernmentCloud"],
    authorityHosts: ["https://login.microsoftonline.us", "https://login.usgovcloudapi.net"],
  },
  AzureChina: {
    names: ["AzureChinaCloud", "AzureChina"],
    authorityHosts: ["https://login.chinacloudapi.cn", "https://login.partner.microsoftonline.cn"],
  },
}

const knownCloudNames = knownClouds.flatMap((c) => knownCloudAliases[c.name].names)
/** The name messages suggest for a known cloud. */
const suggestedName = (c: KnownCloud): string => knownCloudAliases[c.name].names[0] ?? c.name
/** The known cloud `name` (a `cloud.name`, exactly) names. */
const cloudNamed = (name: string): KnownCloud | undefined =>
  knownClouds.find((c) => knownCloudAliases[c.name].names.includes(name))
/** The known cloud whose Entra ID `origin` is (its authority host or an alias of it). */
const cloudOfAuthority = (origin: string | undefined): KnownCloud | undefined =>
  origin === undefined
    ? undefined
    : knownClouds.find((c) => knownCloudAliases[c.name].authorityHosts.includes(origin))
const cloudOfResource = (origin: string | undefined): KnownCloud | undefined =>
  knownClouds.find((c) => c.keyVaultResource === origin)
const cloudOfSuffix = (suffix: string): KnownCloud | undefined =>
  knownClouds.find((c) => c.vaultDnsSuffix === suffix)
/**
 * The known cloud a validated custom block is, endpoint for endpoint: its suffix (lower case, no
 * leading dot), its authority host or an alias of it, and its resource (a trailing slash was
 * dropped by validation). A path on either URL, or a port other than 443, is no known cloud's.
 */
const cloudEqualTo = (custom: Cloud): KnownCloud | undefined =>
  knownClouds.find(
    (c) =>
      custom.vaultDnsSuffix === c.vaultDnsSuffix &&
      knownCloudAliases[c.name].authorityHosts.includes(custom.authorityHost) &&
      custom.keyVaultResource === c.keyVaultResource,
  )
/** The known cloud `vaultUrl` (as given) is a vault of, by its host's suffix; undefined when none or not a URL. */
const cloudOfVaultUrl = (vaultUrl: unknown): KnownCloud | undefined => {
  let host = ""
  try {
    host = typeof vaultUrl === "string" ? new URL(vaultUrl.trim()).hostname.toLowerCase() : ""
  } catch {}
  return knownClouds.find((c) => host.endsWith(`.${c.vaultDnsSuffix}`))
}
/** Whether `vaultUrl` (as given) parses as a URL: a vault_url that does not is its own problem. */
const parsesAsUrl = (vaultUrl: unknown): boolean => {
  try {
    return typeof vaultUrl === "string" && new URL(vaultUrl.trim()).hostname !== ""
  } catch {
    return false
  }
}

/** How messages name a known cloud. */
const cloudLabels: Readonly<Record<CloudName, string>> = {
  AzurePublic: "the public cloud",
  AzureUSGovernment: "the US Government cloud",
  AzureChina: "the China cloud",
  Custom: "a custom cloud",
}

const managedHsmSuffixes = ["managedhsm.azure.net", "managedhsm.usgovcloudapi.net", "managedhsm.azure.cn"]

// ---------------------------------------------------------------------------
// Field rules
// ---------------------------------------------------------------------------

const allowedFields = new Set([
  "vault_url",
  "certificate_name",
  "tags",
  "credential_mode",
  "managed_identity_client_id",
  "on_soft_deleted",
  "pfx_encoding",
  "content_type",
  "consumers",
  "cloud",
])
const allowedCloudFields = new Set(["vault_dns_suffix", "authority_host", "keyvault_resource", "name"])

/** Field names that look like they hold a secret. */
export const secretLookingField =
  /secret|password|passphrase|passwd|pwd|token|key$|private[-_]?key|connection[-_]?string|sas[-_]?url/i

/** Words that, last in a tag key, say it holds a secret; and pairs of last words that do. */
const secretWords = new Set([
  "password",
  "passphrase",
  "passwd",
  "pwd",
  "secret",
  "token",
  "apikey",
  "privatekey",
])
const secretPairs = new Set([
  "api key",
  "private key",
  "access key",
  "secret key",
  "account key",
  "signing key",
  "connection string",
  "sas url",
])

/**
 * Whether a tag key's last word (or last two) names a secret: its words split at `-`, `_`, `.`,
 * `:`, spaces and camelCase humps (`dbPassword` is "db password", `APIToken` "api token").
 */
const namesASecret = (key: string): boolean => {
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .toLowerCase()
    .split(/[-_.:\s]+/)
    .filter((w) => w !== "")
  const last = words.at(-1) ?? ""
  return secretWords.has(last) || secretPairs.has(words.slice(-2).join(" "))
}

const certificateNamePattern = /^[A-Za-z0-9-]{1,127}$/
const vaultNamePattern = /^[a-z][a-z0-9-]{1,22}[a-z0-9]$/
const guidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const hostnamePattern =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

const isLoopbackHost = (hostname: string): boolean =>
  hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname)

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const problem = (field: string, message: string, fix: string): ConfigProblem => ({ field, message, fix })

/** Problems with a certificate name (also used by preflight). */
export const certificateNameProblems = (name: string, field = "certificate_name"): Array<ConfigProblem> =>
  certificateNamePattern.test(name)
    ? []
    : [
        problem(
          field,
          name.length === 0
            ? "is empty"
            : name.length > 127
              ? `is ${name.length} characters long; Key Vault allows at most 127`
              : "may contain only letters, digits and hyphens",
          "use 1-127 characters of A-Z, a-z, 0-9 and '-'",
        ),
      ]

/** Problems with operator tags (also used by preflight). */
/**
 * Text no tag holds: a control character (C0 or DEL; a line break, a tab, NUL) or a PEM marker.
 * Tags are one-line labels shown in the portal and in `az` output; such text is a paste gone wrong
 * (a pasted key would be stored where every reader of the vault's metadata sees it).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const controlOrPem = /[\u0000-\u001f\u007f]|-----BEGIN /

/**
 * Whether a value cannot be a tag value: it holds control characters or PEM text, or reads as the
 * base64 of a key or certificate: the DER from its start, or 64 or more characters from anywhere in
 * it (a line of a PEM body; see holdsEncodedBase64). Never shown back: it may be a pasted key.
 */
export const unfitTagValue = (value: string): boolean =>
  controlOrPem.test(value) || looksLikeDerBase64(value) || holdsEncodedBase64(value)

/** What an outcome shows for a certificate id preflight refused as unfit: never the value itself. */
export const withheldCertificateId = "(not shown: not a certificate id)"

/**
 * Problems with a certificate id (it becomes the certctl-certificate-id tag value): the checks on
 * every tag value. `field` is where the caller took it from.
 */
export const certificateIdProblems = (id: string, field: string): Array<ConfigProblem> => [
  ...(id.length === 0 || id.length > 256
    ? [
        problem(
          field,
          `is ${id.length} characters long; it becomes the certctl-certificate-id tag value`,
          "use an id of 1-256 characters",
        ),
      ]
    : []),
  ...(unfitTagValue(id)
    ? [
        problem(
          field,
          "holds control characters (line breaks, tabs, NUL), PEM text or the base64 of a key or certificate; it becomes the certctl-certificate-id tag value, which every reader of the vault's metadata sees, and it is not shown here",
          "use the certificate's id in the system that issued it: a short one-line value",
        ),
      ]
    : []),
  // As a tag value's: spaces around it would be part of the tag as sent.
  ...(!unfitTagValue(id) && id.trim() !== "" && id !== id.trim()
    ? [
        problem(
          field,
          "has spaces at its start or end, which would be part of the certctl-certificate-id tag value as sent (it is not shown here)",
          "write it without them",
        ),
      ]
    : []),
  ...(id.length > 0 && id.trim() === ""
    ? [
        problem(
          field,
          "is only spaces; it becomes the certctl-certificate-id tag value",
          "use the certificate's id in the system that issued it, or leave it out",
        ),
      ]
    : []),
]

/**
 * The problems of operator tags. `fromFlag` says which keys a `--tag` flag gave: their fixes for
 * spaces name the flag's form; a file's or a library caller's tags get the plain fix.
 * `knownSecrets`: secret values the process holds (its identity's, as credentials'
 * knownIdentitySecrets gives them): a tag value that holds one is refused without being shown.
 */
export const tagProblems = (
  tags: Readonly<Record<string, string>>,
  field = "tags",
  fromFlag: ReadonlySet<string> = new Set(),
  knownSecrets: ReadonlyArray<KnownSecret> = [],
): Array<ConfigProblem> => {
  const out: Array<ConfigProblem> = []
  const withTag = (key: string) => (fromFlag.has(key) ? " (with --tag, no spaces around =)" : "")
  const keys = Object.keys(tags)
  if (keys.length > MAX_OPERATOR_TAGS) {
    out.push(
      problem(
        field,
        `has ${keys.length} tags; Key Vault allows 15 per certificate and kvdeploy adds up to ${15 - MAX_OPERATOR_TAGS} reserved ones`,
        `keep at most ${MAX_OPERATOR_TAGS} operator tags`,
      ),
    )
  }
  for (const key of keys) {
    const value = tags[key] ?? ""
    if (isReservedTagKey(key)) {
      out.push(
        problem(
          `${field}.${keyInField(key)}`,
          "is a reserved tag key that kvdeploy sets itself",
          `remove it; reserved keys are ${RESERVED_TAG_KEYS.join(", ")}`,
        ),
      )
    }
    if (unfitTagValue(key)) {
      out.push(
        problem(
          `${field}.${keyInField(key)}`,
          "is not a tag key: it holds control characters (line breaks, tabs, NUL), PEM text or the base64 of a key or certificate; a tag key is shown to every reader of the vault's metadata, and it is not shown here",
          "use a short name such as env or owner",
        ),
      )
    }
    if (key.length === 0 || key.length > 256) {
      out.push(
        problem(
          `${field}.${keyInField(key)}`,
          `tag key is ${key.length} characters long`,
          "use a tag key of 1-256 characters",
        ),
      )
    }
    if (unfitTagValue(value)) {
      out.push(
        problem(
          `${field}.${keyInField(key)}`,
          "tag value holds control characters (line breaks, tabs, NUL), PEM text or the base64 of a key or certificate; it is not shown here",
          "use a short one-line value (a digest or an id: in hex, as 64 or more base64 characters read as key text)",
        ),
      )
    }
    // `--tag "env = prod"`, or a key typed with a space: kvdeploy sends a tag as written, so the tag
    // would be "env " = " prod", which a search for env=prod does not find.
    if (!unfitTagValue(key) && key !== key.trim())
      out.push(
        key.trim().length === 0
          ? problem(
              `${field}.${keyInField(key)}`,
              "tag key is only spaces",
              "use a short name such as env or owner",
            )
          : problem(
              `${field}.${keyInField(key)}`,
              `tag key ${JSON.stringify(key)} has spaces at its start or end, which would be part of the key as sent`,
              `write it without them: ${JSON.stringify(key.trim())}${withTag(key)}`,
            ),
      )
    if (!unfitTagValue(value) && value !== value.trim())
      out.push(
        problem(
          `${field}.${keyInField(key)}`,
          "tag value has spaces at its start or end, which would be part of the value as sent (it is not shown here)",
          `write it without them${withTag(key)}`,
        ),
      )
    if (key === "__proto__") {
      out.push(
        problem(
          `${field}.__proto__`,
          "is a key JavaScript objects reserve; kvdeploy cannot carry it as a tag",
          "use another tag key",
        ),
      )
    }
    // A tag is read by anyone who can read the certificate's metadata: no place for a secret. A key
    // whose last word names one (db_password, client-secret, dbPassword, api_key) is refused;
    // secret-rotation-date is not.
    if (namesASecret(key) && !controlOrPem.test(key)) {
      out.push(
        problem(
          `${field}.${keyInField(key)}`,
          "is a tag key that names a secret; tags are shown to every reader of the vault's certificate metadata",
          "keep secrets out of tags (kvdeploy reads passwords from environment variables only); rename the tag if it holds none",
        ),
      )
    }
    const held = knownSecrets.find((secret) => withoutSecretValues(value, [secret]) !== value)
    if (held !== undefined) {
      out.push(
        problem(
          `${field}.${keyInField(key)}`,
          `tag value holds ${held.label} (not shown); tags are shown to every reader of the vault's certificate metadata`,
          "keep secrets out of tags: give the tag another value or remove it",
        ),
      )
    }
    if (value.length > 256) {
      out.push(
        problem(
          `${field}.${keyInField(key)}`,
          `tag value is ${value.length} characters long`,
          "use a tag value of at most 256 characters",
        ),
      )
    }
  }
  return out
}

/**
 * A vault's name in Azure's private DNS zone for Key Vault private endpoints: NAME.privatelink.vaultcore.<D>,
 * the vault's own name being NAME.vault.<D> (D: each known cloud's vault DNS suffix after "vault.").
 */
const privateLinkHost = new RegExp(
  `^([^.]+)\\.privatelink\\.vaultcore\\.(${knownClouds
    .map((c) => c.vaultDnsSuffix.replace(/^vault\./, "").replace(/\./g, "\\."))
    .join("|")})$`,
)

interface VaultUrlResult {
  readonly vaultUrl: string
  readonly vaultName: string
  readonly cloud: Cloud
}

/**
 * What in vault_url's text the URL parser would silently mend (a control character or a space
 * anywhere, a backslash, a scheme not followed by exactly `//`), or undefined. The text itself is
 * not quoted: it may be anything pasted there.
 */
const vaultUrlAsWritten = (raw: string): { readonly message: string; readonly fix: string } | undefined => {
  const example = "https://my-vault.vault.azure.net"
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
  const controlPattern = /[\u0000-\u001f\u007f-\u009f]/
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it strips
  const inner = raw.replace(/^[\s\u0000-\u001f\u007f-\u009f]+|[\s\u0000-\u001f\u007f-\u009f]+$/gu, "")
  // Text with no scheme (`my vault`) is no URL at all: the parser says so (what follows is for URLs).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it drops
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(raw.replace(/[\s\u0000-\u001f\u007f-\u009f]/gu, ""))) return undefined
  const control = controlPattern.exec(raw)?.[0]
  if (control !== undefined)
    return {
      message: `holds ${control === "\n" || control === "\r" ? "a line break" : control === "\t" ? "a tab" : "a control character"} (${controlPattern.test(inner) ? "inside it" : "around it"}), which a URL parser would drop without a word`,
      fix: `write the vault's URL on one line, with nothing around it, for example ${example}`,
    }
  if (/\s/u.test(raw))
    return {
      message: `holds a space (${/\s/u.test(inner) ? "inside it" : "at its start or end"}); a vault URL has none`,
      fix: `write the vault's URL without spaces, for example ${example}`,
    }
  // A soft hyphen, a zero-width space or joiner, a byte order mark: invisible, and dropped from a
  // host name by the URL parser's IDNA mapping.
  if (/\p{Cf}/u.test(raw))
    return {
      message:
        "holds an invisible formatting character (a soft hyphen, a zero-width space or joiner), which a URL parser would drop without a word",
      fix: `type the vault's URL again rather than paste it, for example ${example}`,
    }
  if (raw.includes("\\"))
    return {
      message: "holds a backslash, which a URL parser reads as '/'",
      fix: `write the vault's URL with forward slashes, for example ${example}`,
    }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(raw)
  if (scheme !== null && /^https?$/i.test(scheme[1] ?? "") && !/^\/\/[^/]/.test(scheme[2] ?? ""))
    return {
      message: `does not have exactly two slashes after ${scheme[1]?.toLowerCase()}: (a URL parser would skip or add them and read what follows as the host)`,
      fix: `write https:// and the host, for example ${example}`,
    }
  return undefined
}

const validateVaultUrl = (
  raw: string,
  custom: Cloud | undefined,
  problems: Array<ConfigProblem>,
  /** The cloud block's refused name said already which cloud vault_url is not of: not said again. */
  cloudSaid = false,
  /** The known cloud whose endpoints the block gives, all three (its vaults are that cloud's). */
  known: KnownCloud | undefined = undefined,
): VaultUrlResult | undefined => {
  const field = "vault_url"
  const example = "https://my-vault.vault.azure.net"
  if (raw.trim().length === 0) {
    problems.push(problem(field, "is empty", `set it to your vault's URL, for example ${example}`))
    return undefined
  }
  // The URL parser drops tabs and line breaks anywhere and spaces and control characters around
  // the URL, reads a backslash as a slash and skips extra slashes after the scheme: each would
  // turn a mistyped value into another host without a word. Refused before it parses.
  const written = vaultUrlAsWritten(raw)
  if (written !== undefined) {
    problems.push(problem(field, written.message, written.fix))
    return undefined
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    problems.push(problem(field, "is not a URL", `use the vault's URL, for example ${example}`))
    return undefined
  }
  const before = problems.length
  if (url.protocol === "http:") {
    problems.push(problem(field, "uses http; Key Vault is served over https only", "use https://"))
  } else if (url.protocol !== "https:") {
    problems.push(
      problem(field, `uses the scheme ${quotedValue(url.protocol.replace(/:$/, ""))}`, "use https://"),
    )
  }
  if (url.username !== "" || url.password !== "") {
    problems.push(
      problem(
        field,
        "contains credentials",
        "remove the user:password@ part; credentials come from credential_mode",
      ),
    )
  }
  if (url.pathname !== "/" && url.pathname !== "") {
    problems.push(
      problem(
        field,
        `has a path (${shownPath(url.pathname)}); a vault URL is scheme and host only`,
        `use only the origin, for example ${example}`,
      ),
    )
  }
  if (url.search !== "") {
    problems.push(problem(field, "has a query string", "remove everything from '?' on"))
  }
  if (url.hash !== "") {
    problems.push(problem(field, "has a fragment", "remove everything from '#' on"))
  }
  const hostname = url.hostname.toLowerCase()
  const port = url.port // "" when absent or the https default 443
  const hsm = managedHsmSuffixes.find((s) => hostname.endsWith(`.${s}`))
  if (hsm !== undefined) {
    problems.push(
      problem(
        field,
        "is a Managed HSM; Managed HSM stores keys only, it has no certificates, so kvdeploy cannot deploy to it",
        `use a Key Vault (…${hsm.replace("managedhsm", "vault")}) for certificates`,
      ),
    )
    return undefined
  }

  let cloud: Cloud | undefined
  let vaultName: string | undefined
  if (isLoopbackHost(hostname)) {
    if (custom === undefined) {
      if (cloudSaid) return undefined
      problems.push(
        problem(
          field,
          "is a loopback host; loopback vaults (the emulator) are accepted only with an explicit custom cloud",
          "add cloud: { vault_dns_suffix, authority_host, keyvault_resource } (the emulator prints it)",
        ),
      )
      return undefined
    }
    // A loopback host is no vault of a known cloud, whatever endpoints the block gives: the block
    // stays custom (the SDK's challenge resource check would refuse the loopback host).
    cloud = custom
    vaultName = hostname
  } else {
    const candidates = custom === undefined ? knownClouds : [custom]
    const match = candidates.find((c) => hostname.endsWith(`.${c.vaultDnsSuffix}`))
    if (match === undefined) {
      if (cloudSaid && custom === undefined) return undefined
      const privateLink = custom === undefined ? privateLinkHost.exec(hostname) : null
      problems.push(
        privateLink !== null
          ? problem(
              field,
              `host ${quotedValue(hostname)} is a private endpoint's name in Azure's private DNS zone, not the vault's`,
              `use the vault's own name, https://${privateLink[1]}.vault.${privateLink[2]}: where the private DNS zone is linked, it resolves to the private endpoint (the Key Vault SDK and the sign-in checks need the vault's own name)`,
            )
          : custom === undefined
            ? problem(
                field,
                `host ${quotedValue(hostname)} is not a Key Vault host of the public (.vault.azure.net), US Government (.vault.usgovcloudapi.net) or China (.vault.azure.cn) cloud`,
                "fix the host, or for Azure Stack, a private cloud or the emulator declare cloud: { vault_dns_suffix, authority_host, keyvault_resource }",
              )
            : known !== undefined
              ? problem(
                  field,
                  `host ${quotedValue(hostname)} is no vault of ${cloudLabels[known.name]} (.${known.vaultDnsSuffix}), whose endpoints the cloud block gives`,
                  `make vault_url and the cloud block one cloud's: a vault of ${cloudLabels[known.name]} is https://NAME.${known.vaultDnsSuffix}; for a vault in another known cloud remove the cloud block (vault_url's suffix selects its cloud)`,
                )
              : problem(
                  field,
                  `host ${quotedValue(hostname)} does not end with the custom cloud's vault_dns_suffix .${custom.vaultDnsSuffix}`,
                  "make vault_url and cloud.vault_dns_suffix agree",
                ),
      )
      return undefined
    }
    // A known cloud's vault listens on 443 only, whether its suffix or a block equal to it selected it.
    if (port !== "" && (custom === undefined || known !== undefined)) {
      problems.push(problem(field, `has the port ${port}; Key Vault listens on 443 only`, "remove the port"))
    }
    const name = hostname.slice(0, hostname.length - match.vaultDnsSuffix.length - 1)
    if (!vaultNamePattern.test(name) || name.includes("--")) {
      problems.push(
        problem(
          field,
          `vault name ${quotedValue(name)} is invalid: it must be 3-24 characters of letters, digits and single hyphens, start with a letter and not end with a hyphen`,
          "use the vault's name exactly as in the Azure portal",
        ),
      )
    }
    // A block equal to a known cloud is that cloud (instance discovery and the SDK's challenge
    // resource check on), exactly as vault_url's suffix alone would select it.
    cloud = known ?? match
    vaultName = name
  }
  if (problems.length > before) return undefined
  return { vaultUrl: `https://${hostname}${port === "" ? "" : `:${port}`}`, vaultName, cloud }
}

/**
 * An https endpoint of a custom cloud. `originOnly`: scheme, host and port alone (the Key Vault
 * resource, to which kvdeploy appends `/.default` for the token's scope: a path there made the
 * scope `.../.default/.default`, which Entra ID answers with a token Key Vault refuses, 403).
 * authority_host may have a path (Azure Stack's AD FS: `https://adfs.HOST/adfs`).
 */
const validateHttpsOrigin = (
  field: string,
  raw: unknown,
  problems: Array<ConfigProblem>,
  originOnly = false,
): string | undefined => {
  if (typeof raw !== "string") {
    problems.push(problem(field, "is missing or not a string", "set it to an https URL"))
    return undefined
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    problems.push(problem(field, "is not a URL", "set it to an https URL"))
    return undefined
  }
  if (url.protocol !== "https:") {
    problems.push(problem(field, "is not https", "use https://"))
    return undefined
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    problems.push(problem(field, "has a query, fragment or credentials", "use scheme, host and port only"))
    return undefined
  }
  const path = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "")
  if (originOnly && path !== "") {
    const origin = quotedValue(url.origin)
    problems.push(
      /\/\.default$/i.test(path)
        ? problem(
            field,
            "ends in /.default, the token scope's suffix: kvdeploy asks for the resource's /.default itself, so the scope would end in /.default/.default and Key Vault refuse the token (403)",
            `drop /.default: kvdeploy adds it (write ${origin})`,
          )
        : problem(
            field,
            `has a path (${url.pathname.length} characters, not shown): a token's resource is scheme and host only (kvdeploy asks for RESOURCE/.default)`,
            `write scheme and host only: ${origin}`,
          ),
    )
    return undefined
  }
  return `${url.origin}${path}`
}

const originOf = (url: string): string | undefined => {
  try {
    return new URL(url).origin
  } catch {
    return undefined
  }
}

type EndpointField = "vault_dns_suffix" | "authority_host" | "keyvault_resource"

/**
 * Each field of a custom cloud with the known cloud it is an endpoint of (undefined: no known
 * cloud's) and how messages show it: by the table's endpoint it was judged as (equal to the field
 * but for case, a trailing slash or a path the operator added, which is not echoed); an authority
 * host alias (`login.windows.net`) is shown as that alias.
 */
const judgedFields = (
  custom: Cloud,
): ReadonlyArray<{
  readonly field: EndpointField
  readonly cloud: KnownCloud | undefined
  readonly shown: string
}> => {
  const authority = originOf(custom.authorityHost)
  const resource = originOf(custom.keyVaultResource)
  return [
    { field: "vault_dns_suffix", cloud: cloudOfSuffix(custom.vaultDnsSuffix), shown: custom.vaultDnsSuffix },
    { field: "authority_host", cloud: cloudOfAuthority(authority), shown: authority ?? "" },
    { field: "keyvault_resource", cloud: cloudOfResource(resource), shown: resource ?? "" },
  ]
}

/** A known cloud's endpoint for `field`, as the fix gives it. */
const endpointOf = (c: Cloud, field: EndpointField): string =>
  field === "vault_dns_suffix"
    ? c.vaultDnsSuffix
    : field === "authority_host"
      ? c.authorityHost
      : c.keyVaultResource

/**
 * A problem when a custom cloud's fields are endpoints of different known clouds (a public
 * vault_dns_suffix with China's authority_host, say): such a target could never get a token its vault
 * accepts, and would only say so at deploy time. Fields that are no known cloud's endpoint (Azure
 * Stack, a private cloud, the emulator's loopback hosts) are not judged; nor is a block whose known
 * endpoints are all one cloud's. `vaultUrl` (as given) names the cloud the fix points to.
 */
const mixedCloudProblem = (custom: Cloud, vaultUrl: unknown): ConfigProblem | undefined => {
  const fields = judgedFields(custom)
  const byCloud = new Map<KnownCloud, Array<string>>()
  for (const { field, cloud, shown } of fields) {
    if (cloud !== undefined) byCloud.set(cloud, [...(byCloud.get(cloud) ?? []), `${field} ${shown}`])
  }
  if (byCloud.size < 2) return undefined
  const parts = [...byCloud].map(
    ([cloud, named]) =>
      `${named.join(" and ")} ${named.length === 1 ? "is" : "are"} ${cloudLabels[cloud.name]}'s (${cloud.name})`,
  )
  const judged = fields.filter((f) => f.cloud !== undefined).map((f) => f.field)
  const judgedList =
    judged.length === 3 ? `${judged[0]}, ${judged[1]} and ${judged[2]}` : judged.join(" and ")
  const endpointsOf = (c: Cloud) => judged.map((f) => `${f} ${endpointOf(c, f)}`).join(", ")
  // The vault's own cloud, when vault_url is a known cloud's vault host: the fix points to it.
  const vaultCloud = cloudOfVaultUrl(vaultUrl)
  const fix =
    vaultCloud !== undefined
      ? `vault_url is a vault of ${cloudLabels[vaultCloud.name]}: remove the cloud block (vault_url's suffix selects ${cloudLabels[vaultCloud.name]}'s authority_host and keyvault_resource by itself), or make the fields ${cloudLabels[vaultCloud.name]}'s: ${endpointsOf(vaultCloud)}`
      : `make ${judgedList} one cloud's: ${knownClouds.map((c) => `${cloudLabels[c.name]}'s are ${endpointsOf(c)}`).join("; ")}`
  return problem(
    "cloud",
    `mixes Azure clouds: ${parts.join(", while ")}; a vault accepts only tokens its own cloud's Entra ID issued for its own cloud's resource, so this target could never get one it accepts`,
    fix,
  )
}

const customCloudWords = "a custom cloud (Azure Stack, a private cloud, the emulator)"
const namesList = () =>
  `${knownClouds.map((c) => suggestedName(c)).join(", ")} (also ${knownClouds.flatMap((c) => knownCloudAliases[c.name].names.slice(1)).join(", ")})`

/**
 * A problem when a custom cloud's `name` is a known cloud's and its fields say another: a
 * vault_dns_suffix that is not the named cloud's (another known cloud's, or a custom one's), an
 * authority_host or keyvault_resource of another known cloud. The name would otherwise be ignored,
 * and the target would reach another cloud than the one its operator named. An authority_host or
 * keyvault_resource of no known cloud (a private authority in front of a vault) is not judged.
 */
const namedCloudProblem = (
  named: KnownCloud,
  given: string,
  custom: Cloud,
  vaultUrl: unknown,
): ConfigProblem | undefined => {
  const fields = judgedFields(custom)
  // Fields of another known cloud, by cloud; a vault_dns_suffix of no known cloud is a custom cloud's.
  const byCloud = new Map<KnownCloud, Array<string>>()
  const disagreeing: Array<string> = []
  for (const { field, cloud, shown } of fields) {
    if (cloud !== undefined && cloud !== named)
      byCloud.set(cloud, [...(byCloud.get(cloud) ?? []), `${field} ${shown}`])
    else if (cloud === undefined && field === "vault_dns_suffix")
      disagreeing.push(
        `vault_dns_suffix ${shown} is no vault suffix of it (${named.vaultDnsSuffix}) but a custom cloud's`,
      )
  }
  for (const [cloud, shown] of byCloud)
    disagreeing.push(
      `${shown.length === 3 ? `${shown[0]}, ${shown[1]} and ${shown[2]}` : shown.join(" and ")} ${shown.length === 1 ? "is" : "are"} ${cloudLabels[cloud.name]}'s (${cloud.name})`,
    )
  if (disagreeing.length === 0) return undefined
  const label = cloudLabels[named.name]
  const vaultCloud = cloudOfVaultUrl(vaultUrl)
  /** `c`'s endpoints for the fields that are not already its. */
  const endpointsFor = (c: KnownCloud) =>
    fields
      .filter((f) => f.cloud !== c)
      .map((f) => `${f.field} ${endpointOf(c, f.field)}`)
      .join(", ")
  const vaultLabel = vaultCloud === undefined ? "" : cloudLabels[vaultCloud.name]
  const fix =
    vaultCloud === undefined
      ? `for ${customCloudWords} remove cloud.name or make it a label of your own that is no known cloud's name; for a vault in ${label} use its URL (https://NAME.${named.vaultDnsSuffix}) and remove the cloud block, or make the fields ${label}'s: ${endpointsFor(named)}`
      : vaultCloud === named
        ? `vault_url is a vault of ${label}, as the name says: remove the cloud block (vault_url's suffix selects ${label}'s endpoints by itself), or make the fields ${label}'s: ${endpointsFor(named)}`
        : `vault_url is a vault of ${vaultLabel}: remove the cloud block (vault_url's suffix selects ${vaultLabel}'s endpoints by itself), or set cloud.name to ${suggestedName(vaultCloud)}${endpointsFor(vaultCloud) === "" ? ` (the fields are ${vaultLabel}'s)` : ` and the fields to ${vaultLabel}'s: ${endpointsFor(vaultCloud)}`}`
  return problem(
    "cloud.name",
    `${quotedValue(given)} names ${label} (${named.name}), but ${disagreeing.join(", while ")}; a vault accepts only tokens its own cloud's Entra ID issued for its own cloud's resource, so a block and its name must be one cloud's`,
    fix,
  )
}

/**
 * A problem when a cloud block of a known cloud's name alone names another cloud than vault_url's:
 * the name selects a known cloud, whose vaults' suffix vault_url must end with. A vault_url that is
 * no URL is its own problem (nothing is said of it here).
 */
const nameOnlyProblem = (named: KnownCloud, given: string, vaultUrl: unknown): ConfigProblem | undefined => {
  if (!parsesAsUrl(vaultUrl)) return undefined
  const vaultCloud = cloudOfVaultUrl(vaultUrl)
  if (vaultCloud === named) return undefined
  const label = cloudLabels[named.name]
  if (vaultCloud === undefined)
    return problem(
      "cloud.name",
      `${quotedValue(given)} names ${label} (${named.name}), but vault_url is no vault of it (a vault of ${label} is https://NAME.${named.vaultDnsSuffix}); a name alone selects a known cloud only`,
      `for a vault in ${label} use its URL (https://NAME.${named.vaultDnsSuffix}); for ${customCloudWords} declare cloud: { vault_dns_suffix, authority_host, keyvault_resource } instead of a known cloud's name`,
    )
  const vaultLabel = cloudLabels[vaultCloud.name]
  return problem(
    "cloud.name",
    `${quotedValue(given)} names ${label} (${named.name}), but vault_url is a vault of ${vaultLabel} (${vaultCloud.name}, .${vaultCloud.vaultDnsSuffix}); a vault accepts only tokens of its own cloud, so the name cannot select another`,
    `set cloud.name to ${suggestedName(vaultCloud)}, or remove the cloud block (vault_url's suffix selects ${vaultLabel} by itself); if the vault is in ${label}, fix vault_url: its host ends with .${named.vaultDnsSuffix}`,
  )
}

/**
 * `cloud.name`, checked: the known cloud it names; undefined for a label of the operator's own (or
 * a refused name, whose problem is pushed). A name that is a known cloud's but for case or a typo
 * (within two edits) is refused with that name: read as a label, the check it asks for would be lost.
 */
const checkedCloudName = (
  raw: unknown,
  hasEndpoints: boolean,
  problems: Array<ConfigProblem>,
): { readonly named: KnownCloud | undefined; readonly given: string | undefined } => {
  if (typeof raw !== "string" || raw.trim() === "") {
    problems.push(
      problem(
        "cloud.name",
        typeof raw === "string" ? "is empty" : `is not a string (${quotedValue(raw)})`,
        `use a known cloud's name: ${namesList()}; or remove it`,
      ),
    )
    return { named: undefined, given: undefined }
  }
  const named = cloudNamed(raw)
  if (named !== undefined) return { named, given: raw }
  const sameButCase = knownCloudNames.find((n) => n.toLowerCase() === raw.toLowerCase())
  const suggestion =
    sameButCase === undefined ? didYouMean(raw, knownCloudNames) : `did you mean ${sameButCase}? `
  if (suggestion !== "") {
    problems.push(
      problem(
        "cloud.name",
        `${quotedValue(raw)} is not a known cloud's name (names are exact, as every setting here)`,
        `${suggestion}known clouds: ${namesList()}${hasEndpoints ? `; for ${customCloudWords} use a label that is no known cloud's name, or none` : ""}`,
      ),
    )
  } else if (!hasEndpoints) {
    problems.push(
      problem(
        "cloud.name",
        `${quotedValue(raw)} is not a known cloud's name, and the cloud block has no endpoints: a name alone selects a known cloud only`,
        `for a known cloud use its name (${namesList()}), or remove the cloud block (vault_url's suffix selects the cloud); for ${customCloudWords} add vault_dns_suffix, authority_host and keyvault_resource`,
      ),
    )
  }
  return { named: undefined, given: raw }
}

/**
 * The cloud block, checked. `custom`: the endpoints it declares (undefined for a known cloud's
 * name alone, which vault_url's suffix must agree with, or a refused block); `known`: the known
 * cloud those endpoints are, all three (whatever label `name` gives them), which the target then is;
 * `refused`: the block cannot be judged against vault_url (vault_url is then not checked against it).
 */
const validateCloudBlock = (
  raw: unknown,
  vaultUrl: unknown,
  problems: Array<ConfigProblem>,
): {
  readonly custom: Cloud | undefined
  readonly known?: KnownCloud | undefined
  readonly refused: boolean
  readonly cloudSaid?: boolean
} => {
  if (!isRecord(raw)) {
    problems.push(
      problem(
        "cloud",
        "is not an object",
        "use cloud: { vault_dns_suffix, authority_host, keyvault_resource }",
      ),
    )
    return { custom: undefined, refused: true }
  }
  const before = problems.length
  for (const key of Object.keys(raw)) {
    if (!allowedCloudFields.has(key)) {
      problems.push(
        secretLookingField.test(key)
          ? problem(
              `cloud.${keyInField(key)}`,
              "looks like a secret; secrets are never read from configuration",
              "remove it",
            )
          : problem(
              `cloud.${keyInField(key)}`,
              "is not a known field",
              `${didYouMean(key, [...allowedCloudFields])}use ${[...allowedCloudFields].join(", ")}`,
            ),
      )
    }
  }
  const keysRefused = problems.length > before
  const hasEndpoints = ["vault_dns_suffix", "authority_host", "keyvault_resource"].some((k) =>
    Object.hasOwn(raw, k),
  )
  const { named, given } = Object.hasOwn(raw, "name")
    ? checkedCloudName(raw.name, hasEndpoints, problems)
    : { named: undefined, given: undefined }
  if (!hasEndpoints && Object.hasOwn(raw, "name")) {
    // A name alone: a known cloud's selects it, as vault_url's suffix does (the target is that
    // known cloud's, not a custom one); vault_url is checked as with no block.
    if (named !== undefined && given !== undefined) {
      const p = nameOnlyProblem(named, given, vaultUrl)
      if (p !== undefined) problems.push(p)
    }
    // A refused name (or field) is the problem to fix: vault_url is judged as with no block, but
    // without a second problem asking for the cloud block that is there (cloudSaid).
    return { custom: undefined, refused: false, cloudSaid: problems.length > before }
  }
  // A refused name does not stop the endpoints being judged (every problem at once).
  const beforeEndpoints = problems.length
  const suffixRaw = raw.vault_dns_suffix
  let suffix: string | undefined
  if (typeof suffixRaw !== "string" || suffixRaw.length === 0) {
    problems.push(
      problem(
        "cloud.vault_dns_suffix",
        suffixRaw === undefined
          ? "is missing"
          : typeof suffixRaw === "string"
            ? "is empty"
            : "is not a string",
        "set the DNS suffix of vault hosts, for example vault.local.azurestack.external",
      ),
    )
  } else {
    suffix = suffixRaw.toLowerCase().replace(/^\./, "")
    if (!hostnamePattern.test(suffix)) {
      problems.push(
        problem("cloud.vault_dns_suffix", "is not a DNS suffix", "use a host suffix without scheme or path"),
      )
    }
  }
  const authorityHost = validateHttpsOrigin("cloud.authority_host", raw.authority_host, problems)
  const keyVaultResource = validateHttpsOrigin(
    "cloud.keyvault_resource",
    raw.keyvault_resource,
    problems,
    true,
  )
  if (named !== undefined && given !== undefined)
    nameAloneFixes(
      named,
      given,
      raw,
      { suffix, authorityHost, keyVaultResource },
      vaultUrl,
      problems,
      beforeEndpoints,
    )
  if (
    keysRefused ||
    problems.length > beforeEndpoints ||
    suffix === undefined ||
    authorityHost === undefined ||
    keyVaultResource === undefined
  ) {
    return { custom: undefined, refused: true }
  }
  const custom: Cloud = { name: "Custom", vaultDnsSuffix: suffix, authorityHost, keyVaultResource }
  // A known cloud's name: every field is judged against it (which names each field of another
  // cloud, so a mix is not said twice). Refused, but vault_url is still checked against the block's
  // suffix: every problem at once.
  const wrong =
    named !== undefined && given !== undefined
      ? namedCloudProblem(named, given, custom, vaultUrl)
      : mixedCloudProblem(custom, vaultUrl)
  if (wrong !== undefined) problems.push(wrong)
  return { custom, known: wrong === undefined ? cloudEqualTo(custom) : undefined, refused: false }
}

/**
 * A known cloud's name with some endpoints missing: each "is missing" problem's fix also gives the
 * named cloud's endpoint, and says that the name alone selects that cloud (the endpoints given
 * removed), when the endpoints given are all its (an alias authority host counts) and vault_url is a
 * vault of it (the name alone would be accepted). Problems from index `from` on are the endpoints'.
 */
const nameAloneFixes = (
  named: KnownCloud,
  given: string,
  raw: Record<string, unknown>,
  checked: {
    readonly suffix: string | undefined
    readonly authorityHost: string | undefined
    readonly keyVaultResource: string | undefined
  },
  vaultUrl: unknown,
  problems: Array<ConfigProblem>,
  from: number,
): void => {
  const fields: ReadonlyArray<EndpointField> = ["vault_dns_suffix", "authority_host", "keyvault_resource"]
  const present = fields.filter((f) => Object.hasOwn(raw, f))
  const missing = fields.filter((f) => !Object.hasOwn(raw, f))
  if (present.length === 0 || missing.length === 0) return
  const own: Readonly<Record<EndpointField, boolean>> = {
    vault_dns_suffix: checked.suffix === named.vaultDnsSuffix,
    authority_host:
      checked.authorityHost !== undefined &&
      knownCloudAliases[named.name].authorityHosts.includes(checked.authorityHost),
    keyvault_resource: checked.keyVaultResource === named.keyVaultResource,
  }
  if (!present.every((f) => own[f])) return
  if (!parsesAsUrl(vaultUrl) || cloudOfVaultUrl(vaultUrl) !== named) return
  const label = cloudLabels[named.name]
  const remove = present.map((f) => `cloud.${f}`).join(" and ")
  for (let i = from; i < problems.length; i++) {
    const p = problems[i]
    const field = missing.find((f) => p?.field === `cloud.${f}`)
    if (p === undefined || field === undefined) continue
    problems[i] = {
      ...p,
      fix: `set it to ${endpointOf(named, field)} (${label}'s), or remove ${remove}: cloud.name ${given} alone selects ${label} and its endpoints, as vault_url's suffix does`,
    }
  }
}

/**
 * "did you mean X? " when `value` is within two edits of one of `candidates` (a field name or a
 * setting misspelt), else "". Nothing is suggested for a value that is not a short word.
 */
export const didYouMean = (value: unknown, candidates: ReadonlyArray<string>): string => {
  if (typeof value !== "string" || value.length > 64 || candidates.length === 0) return ""
  const nearest = closest(value, [...candidates])
  return distance(value, nearest) <= 2 ? `did you mean ${nearest}? ` : ""
}

const decodeField = <S extends Schema.Decoder<unknown> & { readonly literals: ReadonlyArray<unknown> }>(
  schema: S,
  field: string,
  value: unknown,
  fix: string,
  problems: Array<ConfigProblem>,
): S["Type"] | undefined => {
  const result = Schema.decodeUnknownResult(schema)(value)
  if (Result.isSuccess(result)) return result.success
  const settings = schema.literals.filter((l): l is string => typeof l === "string")
  problems.push(
    problem(field, `has an invalid value (${quotedValue(value)})`, `${didYouMean(value, settings)}${fix}`),
  )
  return undefined
}

/** Fields of an agent deployment's target that are the deploy request's (given apart on the command line), with where they go. */
const requestFields: Readonly<Record<string, string>> = {
  certificate_id:
    "remove it from the target file and give it to kvdeploy deploy as --certificate-id ID (an agent deployment takes certificate_id in its target)",
  adopt:
    "remove it from the target file and give kvdeploy deploy --adopt (an agent deployment takes adopt: true in its target)",
}

/**
 * The fix for a secret-looking field in a target file, by what it seems to hold: a credential's
 * secret comes from credential_mode, a PFX's password and a key's passphrase from a variable the
 * deploy names, a key from the deploy's own flags (a PFX password was told to use credential_mode).
 */
const secretFieldFix = (key: string): string => {
  const k = key.toLowerCase().replace(/-/g, "_")
  if (/client_?secret/.test(k))
    return "remove it; credential_mode client_secret reads AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET from the environment"
  if (/passphrase/.test(k) || (/key/.test(k) && /pass|pwd/.test(k)))
    return "remove it; an encrypted key's passphrase comes from the environment variable that kvdeploy deploy --key-passphrase-env VAR names, never from a file (the agent reads unencrypted keys only)"
  if (/pfx|password|passwd|pwd/.test(k))
    return "remove it; a PFX's password comes from the environment variable that kvdeploy deploy --pfx-password-env VAR names (an agent deployment: pfx_password_env in its source), never from a file"
  if (/previous/.test(k) && /key/.test(k))
    return "remove it; give the served version's key file to kvdeploy deploy as --previous-key FILE (the agent keeps no key history)"
  // A key file's own names, not an API key's or an account key's (those are credentials).
  if (/^(private_?key|key|key_?(file|path|pem)|(tls|cert|certificate)_?key)$/.test(k))
    return "remove it; the key comes with the certificate, not with the target: kvdeploy deploy --key FILE, or an agent deployment's source.key"
  return "remove it; use credential_mode (managed identity, workload identity, or client_secret from the environment)"
}

/**
 * How fixes name fields a caller gave another way than the target file: the CLI's flags
 * (`fromFlags`, the raw field names a flag set: `consumers` from `--consumer`, `content_type` from
 * `--content-type`). A fix then names the flag to change, not the file's field.
 */
/** A secret value the process holds, and how a message names it in its place. */
export interface KnownSecret {
  readonly value: string
  readonly label: string
}

export interface TargetConfigSources {
  readonly fromFlags?: ReadonlySet<string> | undefined
  /** The tag keys `--tag` flags gave (their fixes name the flag's form). */
  readonly tagsFromFlags?: ReadonlySet<string> | undefined
  /** Secret values the process holds: a tag value holding one is refused, unshown (tagProblems). */
  readonly knownSecrets?: ReadonlyArray<KnownSecret> | undefined
}

/** Validate raw (JSON/YAML-decoded) target configuration; every problem is reported. */
export const validateTargetConfigSync = (
  input: unknown,
  sources?: TargetConfigSources,
): Result.Result<TargetConfig, ConfigInvalid> => {
  const problems: Array<ConfigProblem> = []
  if (!isRecord(input)) {
    return Result.fail(
      new ConfigInvalid({
        problems: [
          problem(
            "(config)",
            "is not an object",
            "write the target as an object with vault_url and certificate_name",
          ),
        ],
      }),
    )
  }
  for (const key of Object.keys(input)) {
    if (allowedFields.has(key)) continue
    if (secretLookingField.test(key)) {
      problems.push(
        problem(
          keyInField(key),
          "looks like a secret; kvdeploy never reads secrets from configuration",
          secretFieldFix(key),
        ),
      )
    } else if (Object.hasOwn(requestFields, key)) {
      // Own keys only: `in` also finds Object.prototype's (constructor, toString, __proto__).
      problems.push(
        problem(
          keyInField(key),
          "is not a field of the target: it belongs to the deploy request",
          requestFields[key] ?? "",
        ),
      )
    } else {
      problems.push(
        problem(
          keyInField(key),
          "is not a known field",
          // A misspelt certificate_id or adopt (an agent deployment's target takes them) is suggested too.
          `${didYouMean(key, [...allowedFields, ...Object.keys(requestFields)])}remove it or fix its spelling; known fields: ${[...allowedFields].join(", ")} (and, in an agent deployment's target, ${Object.keys(requestFields).join(" and ")})`,
        ),
      )
    }
  }

  const block =
    input.cloud === undefined
      ? { custom: undefined, refused: false }
      : validateCloudBlock(input.cloud, input.vault_url, problems)
  const custom = block.custom
  const known = block.known
  const customFailed = block.refused

  let url: VaultUrlResult | undefined
  if (typeof input.vault_url !== "string") {
    problems.push(
      problem(
        "vault_url",
        input.vault_url === undefined ? "is missing" : "is not a string",
        "set it, for example https://my-vault.vault.azure.net",
      ),
    )
  } else if (!customFailed) {
    url = validateVaultUrl(input.vault_url, custom, problems, block.cloudSaid === true, known)
  }

  let certificateName: string | undefined
  if (typeof input.certificate_name !== "string") {
    problems.push(
      problem(
        "certificate_name",
        input.certificate_name === undefined ? "is missing" : "is not a string",
        "set it to 1-127 characters of A-Z, a-z, 0-9 and '-'",
      ),
    )
  } else {
    const p = certificateNameProblems(input.certificate_name)
    problems.push(...p)
    if (p.length === 0) certificateName = input.certificate_name
  }

  let tags: Record<string, string> = {}
  if (input.tags !== undefined) {
    if (!isRecord(input.tags)) {
      problems.push(problem("tags", "is not an object", 'use tags: { "key": "value" }'))
    } else {
      const stringTags: Record<string, string> = {}
      for (const [k, v] of Object.entries(input.tags)) {
        // Defined, not assigned: an own "__proto__" key stays a key (tagProblems refuses it).
        if (typeof v === "string")
          Object.defineProperty(stringTags, k, {
            value: v,
            enumerable: true,
            writable: true,
            configurable: true,
          })
        else problems.push(problem(`tags.${keyInField(k)}`, "tag value is not a string", "quote the value"))
      }
      problems.push(...tagProblems(stringTags, "tags", sources?.tagsFromFlags, sources?.knownSecrets))
      tags = stringTags
    }
  }

  const credentialMode =
    input.credential_mode === undefined
      ? "default"
      : decodeField(
          CredentialMode,
          "credential_mode",
          input.credential_mode,
          "use one of default, managed_identity, client_secret, workload_identity",
          problems,
        )
  let managedIdentityClientId: string | undefined
  if (input.managed_identity_client_id !== undefined) {
    const notGuid =
      typeof input.managed_identity_client_id !== "string" ||
      !guidPattern.test(input.managed_identity_client_id)
    if (credentialMode !== "managed_identity") {
      // Both said at once: setting the mode alone would meet the second next run.
      problems.push(
        problem(
          "managed_identity_client_id",
          `is set but credential_mode is not managed_identity${notGuid ? ", and it is not a client id (a GUID)" : ""}`,
          `set credential_mode: managed_identity${notGuid ? " and the user-assigned identity's client id (for example 00000000-0000-0000-0000-000000000000)" : ""}, or remove managed_identity_client_id`,
        ),
      )
    } else if (notGuid) {
      problems.push(
        problem(
          "managed_identity_client_id",
          "is not a client id (a GUID)",
          "use the user-assigned identity's client id, for example 00000000-0000-0000-0000-000000000000",
        ),
      )
    } else {
      managedIdentityClientId = String(input.managed_identity_client_id).toLowerCase()
    }
  }
  const onSoftDeleted =
    input.on_soft_deleted === undefined
      ? "fail"
      : decodeField(
          OnSoftDeleted,
          "on_soft_deleted",
          input.on_soft_deleted,
          "use fail (default) or recover",
          problems,
        )
  const pfxEncoding =
    input.pfx_encoding === undefined
      ? "modern"
      : decodeField(
          PfxEncodingSetting,
          "pfx_encoding",
          input.pfx_encoding,
          "use modern (default) or legacy",
          problems,
        )
  const contentType =
    input.content_type === undefined
      ? "keep"
      : decodeField(
          ContentTypeSetting,
          "content_type",
          input.content_type,
          "use keep (default: the content type the vault serves now; PKCS#12 for a new certificate), pkcs12 or pem",
          problems,
        )

  const consumers = validateConsumers(input.consumers, contentType, problems, sources?.fromFlags)

  if (
    problems.length > 0 ||
    url === undefined ||
    certificateName === undefined ||
    credentialMode === undefined ||
    onSoftDeleted === undefined ||
    pfxEncoding === undefined ||
    contentType === undefined
  ) {
    return Result.fail(new ConfigInvalid({ problems }))
  }
  const config: TargetConfig = {
    vaultUrl: url.vaultUrl,
    vaultName: url.vaultName,
    certificateName,
    tags,
    credentialMode,
    ...(managedIdentityClientId === undefined ? {} : { managedIdentityClientId }),
    onSoftDeleted,
    pfxEncoding,
    contentType,
    ...(consumers === undefined || consumers.length === 0 ? {} : { consumers }),
    cloud: url.cloud,
  }
  return Result.succeed(config)
}

const consumerList = consumerNames.join(", ")

/**
 * The target's `consumers`: a list of known names, each once; undefined when left out or not
 * valid (the problems say why). The three read PKCS#12 only, so `content_type: pem` with any of
 * them is a problem too (`contentType`: the validated setting, undefined when it is not valid).
 */
const validateConsumers = (
  value: unknown,
  contentType: ContentTypeSetting | undefined,
  problems: Array<ConfigProblem>,
  fromFlags: ReadonlySet<string> | undefined,
): ReadonlyArray<Consumer> | undefined => {
  if (value === undefined) return undefined
  if (!Array.isArray(value)) {
    problems.push(
      problem(
        "consumers",
        "is not a list",
        `write it as a list of the services that read this certificate from the vault, for example consumers: [front_door]; the names: ${consumerList}`,
      ),
    )
    return undefined
  }
  const consumers: Array<Consumer> = []
  /** Where each name was first given (its index in the list as written). */
  const firstAt = new Map<string, number>()
  let valid = true
  value.forEach((name: unknown, i) => {
    const field = `consumers[${i}]`
    if (typeof name !== "string" || !(consumerNames as ReadonlyArray<string>).includes(name)) {
      valid = false
      problems.push(
        problem(
          field,
          `is not a consumer kvdeploy knows (${quotedValue(name)})`,
          `${didYouMean(name, consumerNames)}use one of ${consumerList}, or leave it out (an AKS Secrets Store CSI mount reads PKCS#12 and PEM alike: it needs no entry)`,
        ),
      )
      return
    }
    const first = firstAt.get(name)
    if (first !== undefined) {
      valid = false
      problems.push(
        problem(field, `names ${name} again (consumers[${first}] names it)`, "give each consumer once"),
      )
      return
    }
    firstAt.set(name, i)
    consumers.push(name as Consumer)
  })
  if (contentType === "pem") {
    const named = consumers.map((c) => `${c} (${consumerLabels[c]})`)
    if (named.length > 0)
      problems.push(
        problem(
          "content_type",
          `is pem, but ${named.join(", ")} ${named.length === 1 ? "reads" : "read"} the certificate's secret as PKCS#12 only: ${named.length === 1 ? "it" : "they"} could not read a PEM version`,
          `${fromFlags?.has("content_type") === true ? "give --content-type keep" : "set content_type: keep"} (it imports PKCS#12 for these consumers) or pkcs12, or ${fromFlags?.has("consumers") === true ? `leave ${consumers.join(", ")} out of --consumer` : `remove ${consumers.join(", ")} from consumers`} if ${consumers.length === 1 ? "it does" : "they do"} not read this certificate`,
        ),
      )
  }
  return valid ? consumers : undefined
}

/**
 * A validated target's cloud in words, as `kvdeploy validate` and `doctor` show it: a known cloud
 * by its name, noting when a cloud block's endpoints selected it (they are all that cloud's: the
 * block equals it), with an alias authority host the block gives and a `name` that is only a
 * label; a custom cloud by its vaults' suffix. `block` is the target's `cloud` as given (undefined
 * when there is none).
 */
export const shownCloud = (cloud: Cloud, block: unknown): string => {
  if (cloud.name === "Custom") return `custom cloud .${cloud.vaultDnsSuffix}`
  if (!isRecord(block) || !Object.hasOwn(block, "vault_dns_suffix")) return cloud.name
  const notes: Array<string> = []
  const authority = typeof block.authority_host === "string" ? originOf(block.authority_host) : undefined
  if (authority !== undefined && authority !== cloud.authorityHost)
    notes.push(`authority_host ${authority} is an alias of its ${cloud.authorityHost}`)
  if (typeof block.name === "string" && cloudNamed(block.name) === undefined)
    notes.push(`cloud.name ${quotedValue(block.name)} is only a label`)
  return [`${cloud.name}: the cloud block's endpoints are ${cloudLabels[cloud.name]}'s`, ...notes].join("; ")
}

/** Validate raw target configuration; fails with every problem found. */
export const validateTargetConfig = (input: unknown): Effect.Effect<TargetConfig, ConfigInvalid> =>
  Effect.suspend(() => Effect.fromResult(validateTargetConfigSync(input)))
