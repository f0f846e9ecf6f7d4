/**
 * `restore --from-version`: the version id it names. A version id as `kvdeploy versions` lists it,
 * or a version's id as Key Vault and `az` print it (`https://VAULT.vault.azure.net/certificates/
 * NAME/VERSION`), or its path (`/certificates/NAME/VERSION`): of the target's certificate in the
 * target's vault only, since a restore deploys to the target.
 */
import { quotedValue } from "@kvdeploy/core"

/** A Key Vault version id: 32 hexadecimal digits. */
const versionIdPattern = /^[0-9a-f]{32}$/i

export type FromVersion =
  | { readonly _tag: "VersionId"; readonly versionId: string }
  | { readonly _tag: "Refused"; readonly message: string; readonly fix: string }

const refused = (message: string, fix: string): FromVersion => ({ _tag: "Refused", message, fix })

/**
 * A value a message names: quoted when it can be shown, else described as what it was read as
 * (`the URL given (a string of 81 characters, not shown)`).
 */
const subjectOf = (value: string, readAs = "value"): string => {
  const shown = quotedValue(value)
  return shown.startsWith('"') ? shown : `the ${readAs} given (${shown})`
}

/** The scheme and host (and port) of a URL, lower case, as Key Vault compares them; undefined when it is none. */
const originOf = (url: string): string | undefined => {
  try {
    const origin = new URL(url).origin
    return origin === "null" ? undefined : origin.toLowerCase()
  } catch {
    return undefined
  }
}

/**
 * The version `given` names, for the certificate `certificateName` in the vault at `vaultUrl`, or
 * why it is refused (in words that name the flag's value as it can be shown).
 */
export const fromVersionOf = (given: string, certificateName: string, vaultUrl: string): FromVersion => {
  const value = given.trim()
  // As `kvdeploy versions` lists them: lower case.
  if (versionIdPattern.test(value)) return { _tag: "VersionId", versionId: value.toLowerCase() }
  const idForm = `${vaultUrl.replace(/\/+$/, "")}/certificates/${certificateName}/VERSION`
  const fix = `give a version id as \`kvdeploy versions\` lists them, or a version's id as \`az keyvault certificate list-versions\` prints it (${idForm})`
  const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(value)
  const isPath = /^\/?certificates\//i.test(value)
  if (!isUrl && !isPath)
    return refused(
      `${subjectOf(given)} is neither a version id (32 hexadecimal digits) nor the id of a version of ${certificateName} (${idForm})`,
      fix,
    )
  // A URL with a user name or password is not repeated (the password would be), nor taken.
  if (isUrl && /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(value))
    return refused(
      "the URL given (not shown: it carries a user name or password) is not a version's id",
      `give the version id alone, as \`kvdeploy versions\` lists them, or its id without credentials (${idForm})`,
    )
  const origin = isUrl ? originOf(value) : undefined
  const named = (text: string) => subjectOf(text, isUrl ? "URL" : "path")
  if (isUrl && origin === undefined)
    return refused(`${named(given)} is not a URL that can be read, nor a version id`, fix)
  const path = isUrl ? new URL(value).pathname : value.replace(/[?#].*$/, "")
  const segments = path.split("/").filter((s) => s !== "")
  const [kind, name, version] = segments
  if (kind?.toLowerCase() !== "certificates" || name === undefined || segments.length > 3)
    return refused(
      `${named(given)} is not the id of a certificate's version (…/certificates/NAME/VERSION)`,
      fix,
    )
  if (version === undefined)
    return refused(
      `${named(given)} names a certificate, not one of its versions (…/certificates/NAME/VERSION)`,
      `add the version, as \`kvdeploy versions\` lists them (${idForm})`,
    )
  if (!versionIdPattern.test(version))
    return refused(
      `${named(given)} does not end in a version id (32 hexadecimal digits)`,
      `give a version id as \`kvdeploy versions\` lists them (${idForm})`,
    )
  // Key Vault's names and hosts are case-insensitive.
  const otherVault = origin !== undefined && origin !== originOf(vaultUrl)
  const otherName = name.toLowerCase() !== certificateName.toLowerCase()
  if (otherVault || otherName) {
    const theirs = [
      ...(otherName ? [`the certificate ${quotedValue(name)}`] : []),
      ...(otherVault ? [`the vault ${quotedValue(origin)}`] : []),
    ].join(" in ")
    const ours = [...(otherName ? [certificateName] : []), ...(otherVault ? [vaultUrl] : [])].join(" in ")
    return refused(
      `${named(given)} is a version of ${theirs}, not of the target's ${otherName && otherVault ? "certificate and vault" : otherName ? "certificate" : "vault"} (${ours}): a restore puts back a version of the certificate it deploys to`,
      `give a version of ${certificateName} (\`kvdeploy versions\` lists them), or restore in that ${otherName && otherVault ? "vault's certificate" : otherName ? "certificate" : "vault"} (--name, --vault-url or the target file)`,
    )
  }
  return { _tag: "VersionId", versionId: version.toLowerCase() }
}
