/** The text of a Failed deploy: its next step follows what failed, read from the adapter's reason. */
import { type DeployOutcome, VaultForbidden, VaultRequestRejected, VaultUnavailable } from "@kvdeploy/core"
import { describe, expect, it } from "vitest"
import { deployedExpiryText, leafSummary, nextStep, outcomeLines } from "../src/cli/outcome.js"
import { issue } from "../src/cli/throwawayPki.js"
import type { CredentialInUse } from "../src/cli/vault.js"
import { expiryText } from "../src/cli/versions.js"

/** A client secret's credential, with multi-tenant authentication as @azure/identity has it by default. */
const clientSecret: CredentialInUse = {
  mode: "client_secret",
  tokenExchange: false,
  multiTenantAuthDisabled: false,
}

const plain = {
  bold: (s: string) => s,
  dim: (s: string) => s,
  green: (s: string) => s,
  red: (s: string) => s,
  yellow: (s: string) => s,
  cyan: (s: string) => s,
}

/** The `next` line of a Failed import whose error is `error` (its message is the reason, its refusal and unsent the outcome's, as in core). */
const nextOf = (
  error: {
    readonly _tag: string
    readonly message: string
    readonly refusal?: string | undefined
    readonly unsent?: boolean | undefined
    readonly tlsRefused?: boolean | undefined
    readonly code?: string | undefined
  },
  credential: CredentialInUse = clientSecret,
): string => {
  const outcome = {
    _tag: "Failed",
    step: "import",
    error: error._tag,
    ...("refusal" in error && error.refusal !== undefined ? { refusal: error.refusal } : {}),
    ...(error.unsent === true ? { unsent: true } : {}),
    ...(error.tlsRefused === true ? { tlsRefused: true } : {}),
    ...(error.code === undefined ? {} : { code: error.code }),
    target: { vaultUrl: "https://kv.vault.azure.net", certificateName: "api" },
    certificateId: "api",
    previous: undefined,
    newX5t: undefined,
    adopted: false,
    reason: `the import was refused and no version was written: ${error.message}`,
    vaultCalls: 2,
    decisions: [],
    timings: { startedAtMs: 0, finishedAtMs: 1, durationMs: 1 },
  } as unknown as DeployOutcome
  const line = outcomeLines(outcome, undefined, plain as never, 0, credential).find((l) =>
    l.trimStart().startsWith("next"),
  )
  return line ?? ""
}

/** The lines the CLI prints for an outcome with `fields` over a plain one (no previous version, no new x5t). */
const linesOf = (fields: Record<string, unknown>) =>
  outcomeLines(
    {
      target: { vaultUrl: "https://kv.vault.azure.net", certificateName: "api" },
      certificateId: "api",
      previous: undefined,
      newX5t: undefined,
      adopted: false,
      reason: "core's reason, for every caller",
      vaultCalls: 3,
      decisions: [],
      timings: { startedAtMs: 0, finishedAtMs: 1, durationMs: 1 },
      ...fields,
    } as unknown as DeployOutcome,
    undefined,
    plain as never,
    0,
    clientSecret,
  )

const forbidden = (
  detail: string,
  refusal?: "permission" | "token" | "network" | "credential" | "disabled" | "tenant",
) => new VaultForbidden({ operation: "importVersion", detail, ...(refusal === undefined ? {} : { refusal }) })

describe("a Failed deploy's next step", () => {
  it("a missing grant: grant it, not retry", () => {
    expect(nextOf(forbidden("grant the identity the RBAC role …: denied", "permission"))).toContain(
      "grant what the reason names",
    )
  })
  it("a token the vault refused: the tenant and cloud, not a grant", () => {
    const next = nextOf(
      forbidden("the vault refused the token (check the credential's tenant …): AKV10032", "token"),
    )
    expect(next).toContain("tenant")
    expect(next).not.toContain("grant what")
  })
  it("the vault's firewall: its networking rules", () => {
    expect(
      nextOf(forbidden("the vault's firewall refused this client's network address: …", "network")),
    ).toContain("networking rules")
  })
  it("a credential the identity provider refused: the credential", () => {
    expect(
      nextOf(
        forbidden(
          "no token for the vault: the credential was refused or is not available here (nothing was sent to the vault): AADSTS7000215",
          "credential",
        ),
      ),
    ).toContain("check that AZURE_CLIENT_SECRET is current")
  })
  it("an identity provider that did not answer: later, not the credential", () => {
    const next = nextOf(
      new VaultUnavailable({
        operation: "importVersion",
        detail:
          "no token for the vault (nothing was sent): the identity provider could not be reached: ECONNREFUSED",
        unsent: true,
      }),
    )
    expect(next).toContain("deploy again later")
    expect(next).not.toContain("AZURE_CLIENT_SECRET")
  })
  it("a certificate whose delete was under way: recover or purge it once deleted, not a retry as is", () => {
    const next = nextOf(
      new VaultRequestRejected({
        operation: "importVersion",
        code: "ObjectIsBeingDeleted",
        detail: "the certificate is being deleted in the vault …",
      }),
    )
    expect(next).toContain("--on-soft-deleted recover")
    expect(next).not.toContain("retrying as is gets the same answer")
  })
  it("the vault's Azure Policy refused the certificate: a certificate it allows or an exemption, not a grant, not a retry as is", () => {
    const next = nextOf(
      new VaultRequestRejected({
        operation: "importVersion",
        status: 403,
        code: "RequestDisallowedByPolicy",
        detail: "the vault's Azure Policy refused this certificate (policy assignment cert-max-validity) …",
      }),
    )
    expect(next).toContain("the vault's Azure Policy refused the certificate")
    expect(next).toContain("policy exemption")
    expect(next).toContain("no grant helps")
    expect(next).not.toMatch(/grant what|certificate operation is in progress/)
  })
  it("a vault that did not answer: retry as is", () => {
    expect(
      nextOf(new VaultUnavailable({ operation: "importVersion", detail: "the vault answered 503" })),
    ).toContain("can be retried as is")
  })
  it("a vault TLS certificate this machine did not accept: the CA trust, not a retry", () => {
    const next = nextOf(
      new VaultUnavailable({ operation: "getLatest", detail: "not accepted", tlsRefused: true }),
    )
    expect(next).toContain("NODE_EXTRA_CA_CERTS")
    expect(next).toContain("retrying as is fails the same way")
    expect(nextOf(new VaultUnavailable({ operation: "getLatest", detail: "down" }))).toContain(
      "can be retried as is",
    )
  })

  it("a lost import the version list did not show, and a recovery of unknown outcome: the CLI's checks", () => {
    const failedLines = (fields: Record<string, unknown>) => linesOf({ _tag: "Failed", ...fields })
    const failed = (fields: Record<string, unknown>) =>
      failedLines(fields).find((l) => l.trimStart().startsWith("next")) ?? ""
    expect(failed({ step: "reconcile", error: "VaultAmbiguous" })).toContain("`kvdeploy versions`")
    expect(failed({ step: "soft-deleted", error: "VaultAmbiguous", recovered: "unknown" })).toContain(
      "`kvdeploy show`",
    )
    // The meaning line (second) does not call the vault unchanged when the import may still land.
    expect(failedLines({ step: "reconcile", error: "VaultAmbiguous" })[1]).toBe(
      "  the import's answer was lost and the vault's versions did not show it: no version is known to be written, but it may still appear",
    )
    expect(failedLines({ step: "import", error: "VaultUnavailable" })[1]).toBe(
      "  the vault is unchanged by this deploy",
    )
  })

  it("a recovery whose answer was lost, then served again: neither claims the recovery nor says it may still complete", () => {
    const lines = (fields: Record<string, unknown>) => linesOf({ recovered: "unknown", ...fields })
    const served =
      "  no version was written; the soft-deleted certificate's recovery was sent and its answer lost, and the vault serves the certificate again (this recovery or another writer's brought it back)"
    expect(lines({ _tag: "Skipped", versionId: "v1" })[1]).toBe(served)
    expect(lines({ _tag: "Failed", step: "import", error: "VaultForbidden" })[1]).toBe(served)
    expect(lines({ _tag: "Failed", step: "import", error: "VaultConflictSoftDeleted" })[1]).toBe(
      "  no version was written; the soft-deleted certificate's recovery was sent and its answer lost; a read after it showed the certificate served (brought back by that recovery or another writer's, or a lagging replica's answer), and the import found the name deleted",
    )
    // Not served yet: the deploy stopped at the recovery.
    expect(lines({ _tag: "Failed", step: "soft-deleted", error: "VaultAmbiguous" })[1]).toBe(
      "  no version was written; the soft-deleted certificate's recovery was sent and may still complete",
    )
    // A failure after it was served again is that failure's to advise on, not the recovery's.
    const next = (fields: Record<string, unknown>) =>
      lines({ _tag: "Failed", ...fields }).find((l) => l.trimStart().startsWith("next")) ?? ""
    expect(next({ step: "import", error: "VaultForbidden" })).not.toContain("serves the certificate again")
    for (const tag of ["Succeeded", "Skipped"])
      expect(
        lines({ _tag: tag, versionId: "v2" }).find((l) => l.trimStart().startsWith("recovered")),
        tag,
      ).toBe(
        "  recovered   the recovery was sent and its answer lost: whether it recovered the certificate is not known (on_soft_deleted: recover)",
      )
  })

  it("recovered, then refused as deleted again: does not say the vault serves it", () => {
    const meaning = (fields: Record<string, unknown>) =>
      linesOf({ _tag: "Failed", step: "import", recovered: "recovered", ...fields })[1]
    const again =
      "  no version was written; the soft-deleted certificate was recovered, then deleted again before the import"
    expect(meaning({ error: "VaultConflictSoftDeleted" })).toBe(again)
    expect(meaning({ error: "VaultRequestRejected", code: "ObjectIsBeingDeleted" })).toBe(again)
    // Refused for another reason after the recovery: the vault does serve it again.
    expect(meaning({ error: "VaultForbidden" })).toBe(
      "  no version was written, but the soft-deleted certificate was recovered: the vault serves it again",
    )
  })

  it("served already when kvdeploy went to recover it: never says kvdeploy recovered it, nor who did", () => {
    const lines = (fields: Record<string, unknown>) => linesOf({ recovered: "already-served", ...fields })
    const recoveredLine = (fields: Record<string, unknown>) =>
      lines(fields).find((l) => l.trimStart().startsWith("recovered")) ?? ""
    for (const fields of [
      { _tag: "Succeeded", versionId: "v2" },
      { _tag: "Skipped", versionId: "v1" },
      { _tag: "Failed", step: "import", error: "VaultForbidden" },
    ])
      expect(recoveredLine(fields), fields._tag).toBe(
        "  recovered   none by kvdeploy: the vault served the certificate again without its recovery (another writer recovered it, or the name holds a certificate made since; on_soft_deleted: recover)",
      )
    const meaning = (fields: Record<string, unknown>) =>
      lines({ _tag: "Failed", step: "import", ...fields })[1]
    expect(meaning({ error: "VaultForbidden" })).toBe(
      "  no version was written; the vault served the certificate again without kvdeploy's recovery (another writer recovered it, or the name holds a certificate made since), so kvdeploy recovered nothing: the vault serves it",
    )
    expect(meaning({ error: "VaultConflictSoftDeleted" })).toBe(
      "  no version was written; the vault served the certificate again without kvdeploy's recovery (another writer recovered it, or the name holds a certificate made since), so kvdeploy recovered nothing; it was then deleted before the import",
    )
    // Nowhere does the text say kvdeploy recovered it.
    for (const fields of [
      { _tag: "Skipped", versionId: "v1" },
      { _tag: "Failed", step: "import", error: "VaultForbidden" },
    ])
      expect(lines(fields).join("\n"), fields._tag).not.toContain(
        "the soft-deleted certificate was recovered",
      )
  })

  it("no deleted certificate found when the deploy read or recovered it: deploy again, not 'check the vault URL'", () => {
    const next = (fields: Record<string, unknown>) =>
      linesOf({ _tag: "Failed", error: "VaultNotFound", ...fields }).find((l) =>
        l.trimStart().startsWith("next"),
      ) ?? ""
    const raced = next({ step: "soft-deleted" })
    expect(raced).toContain("recovered or purged by someone else while this deploy ran")
    expect(raced).toContain("deploy again")
    expect(raced).not.toContain("vault URL")
    // A certificate not found elsewhere keeps its advice.
    expect(next({ step: "snapshot" })).toContain("check the vault URL")
  })

  it("a lost import into a certificate deleted meanwhile: kvdeploy's conclusion, and what a retry does", () => {
    const next =
      linesOf({ _tag: "Failed", step: "reconcile", error: "VaultConflictSoftDeleted" }).find((l) =>
        l.trimStart().startsWith("next"),
      ) ?? ""
    expect(next).toContain("kvdeploy concluded that nothing was written")
    expect(next).toContain("with --on-soft-deleted recover")
    expect(next).not.toContain("retrying as is fails the same way")
  })
})

describe("the old line of an outcome without a previous version", () => {
  it("says why there is none, not 'first deploy, or unknown' for a served certificate or a soft-deleted name", () => {
    const old = (fields: Record<string, unknown>) =>
      linesOf(fields).find((l) => l.trimStart().startsWith("old")) ?? ""
    expect(old({ _tag: "Rejected", problems: [], vaultCalls: 0 })).toBe(
      "  old         (not read: the material was refused before the deploy's first vault call)",
    )
    expect(old({ _tag: "Failed", step: "snapshot", error: "VaultUnavailable", vaultCalls: 2 })).toBe(
      "  old         (unknown: the served version could not be read)",
    )
    expect(
      old({ _tag: "Failed", step: "soft-deleted", error: "VaultConflictSoftDeleted", vaultCalls: 2 }),
    ).toBe("  old         (none served: a soft-deleted certificate holds the name)")
    // A soft-deleted name's refusal (not kvdeploy's, or a previous key that does not match) after reading the vault.
    for (const reason of ["not_managed", "previous_key"])
      expect(old({ _tag: "Rejected", problems: [{ reason }], vaultCalls: 2 })).toBe(
        "  old         (none served: a soft-deleted certificate holds the name)",
      )
    // A refusal after a snapshot that found nothing, for another reason (a PFX that could not be built).
    expect(old({ _tag: "Rejected", problems: [{ reason: "material_invalid" }], vaultCalls: 1 })).toBe(
      "  old         (none: first deploy)",
    )
    expect(old({ _tag: "Succeeded", versionId: "v1", vaultCalls: 3 })).toBe(
      "  old         (none: first deploy)",
    )
    // A version whose create never completed holds no certificate: no x5t to show.
    expect(
      old({
        _tag: "Rejected",
        problems: [],
        vaultCalls: 1,
        previous: { versionId: "a703", x5t: "", serialHex: "" },
      }),
    ).toBe("  old         a703  x5t (none: no certificate yet)")
    expect(linesOf({ _tag: "Rejected", problems: [], vaultCalls: 1 })[1]).toBe(
      "  refused; nothing was written",
    )
  })
})

describe("an Unverified deploy's meaning", () => {
  const meaningLine = (versionId: string | undefined) =>
    linesOf({ _tag: "Unverified", versionId, postVerifyFailure: "unreadable" })[1]

  it("says the import happened only when a version is known to be this deploy's", () => {
    expect(meaningLine("0a1b2c")).toBe(
      "  imported, but the vault could not be read back: needs a person to check",
    )
    // A lost answer the version list could not settle: no version is named, and "imported" is not said.
    expect(meaningLine(undefined)).toBe(
      "  the import may have been written, and the vault did not show whether: needs a person to check",
    )
    // ... and its next step does not wait for the vault to "be read again": it may have been read.
    const next = (versionId: string | undefined) =>
      linesOf({ _tag: "Unverified", versionId, postVerifyFailure: "unreadable" }).find((l) =>
        l.trimStart().startsWith("next"),
      )
    expect(next("0a1b2c")).toContain("once the vault can be read again")
    expect(next(undefined)).toContain("`kvdeploy versions` shows what the vault holds")
    expect(next(undefined)).not.toContain("read again")
  })
})

describe("the certificate rows", () => {
  it("say they are the certificate this deploy was given, not what the vault serves after a rollback", () => {
    const lines = outcomeLines(
      {
        _tag: "RolledBack",
        target: { vaultUrl: "https://kv.vault.azure.net", certificateName: "api" },
        certificateId: "api",
        previous: { versionId: "v1", x5t: "old" },
        failedVersionId: "v2",
        rollbackVersionId: "v3",
        rollbackSource: "backing secret",
        newX5t: "new",
        adopted: false,
        reason: "the vault served v2 disabled",
        vaultCalls: 6,
        decisions: [],
        timings: { startedAtMs: 0, finishedAtMs: 1, durationMs: 1 },
      } as unknown as DeployOutcome,
      {
        subject: "CN=new.example.test",
        notAfter: "2027-01-01T00:00:00.000Z",
        sha256: "ab",
        earliestNotAfter: "2027-01-01T00:00:00.000Z",
      },
      plain as never,
      Date.parse("2026-12-01T00:00:00Z"),
      clientSecret,
    )
    const at = lines.indexOf("  given       the certificate this deploy was given:")
    expect(at).toBeGreaterThan(0)
    expect(lines[at + 1]).toBe("  subject     CN=new.example.test")
  })
})

describe("a rollback over another writer's import", () => {
  const rolledBack = (overwritten?: ReadonlyArray<{ versionId: string; x5t: string }>) =>
    ({
      _tag: "RolledBack",
      target: { vaultUrl: "https://kv.vault.azure.net", certificateName: "api" },
      certificateId: "api",
      previous: { versionId: "v1", x5t: "old" },
      failedVersionId: "v2",
      rollbackVersionId: "v4",
      rollbackSource: "backing-secret",
      ...(overwritten === undefined ? {} : { overwritten }),
      newX5t: "new",
      adopted: false,
      reason: "v2 was wrong",
      vaultCalls: 9,
      decisions: [],
      timings: { startedAtMs: 0, finishedAtMs: 1, durationMs: 1 },
    }) as unknown as DeployOutcome

  it("names the version now under the previous certificate, and the next step puts it back", () => {
    const o = rolledBack([{ versionId: "v3", x5t: "theirs" }])
    const lines = outcomeLines(o, undefined, plain as never, 0, clientSecret)
    expect(lines).toContain(
      "  overwritten v3  x5t theirs: another writer's, imported after the snapshot, under the rollback now",
    )
    const next = nextStep(o, clientSecret)
    expect(next).toContain("kvdeploy restore --from-version v3")
    expect(lines).toContain(`  next        ${next}`)
  })

  it("a copy of the new certificate from the snapshot's second: said as possibly under the rollback, not as overwritten", () => {
    const o = {
      ...rolledBack(),
      possiblyOverwritten: [{ versionId: "v0", x5t: "new" }],
    } as unknown as DeployOutcome
    const lines = outcomeLines(o, undefined, plain as never, 0, clientSecret)
    expect(lines).toContain(
      "  possibly overwritten v0  x5t new: a copy of the new certificate from the snapshot's second (an earlier deploy's, or another deployer's since the snapshot: Key Vault cannot order versions within a second)",
    )
    expect(lines.some((l) => l.trimStart().startsWith("overwritten"))).toBe(false)
  })

  it("not checked (the versions could not be listed): said on the overwritten line", () => {
    const o = { ...rolledBack(), overwrittenUnchecked: true } as unknown as DeployOutcome
    expect(outcomeLines(o, undefined, plain as never, 0, clientSecret)).toContain(
      "  overwritten not checked: the versions could not be listed after the rollback's import (`kvdeploy versions` lists them)",
    )
  })

  it("without one: no overwritten line, and the usual next step", () => {
    const o = rolledBack()
    const lines = outcomeLines(o, undefined, plain as never, 0, clientSecret)
    expect(lines.some((l) => l.trimStart().startsWith("overwritten"))).toBe(false)
    expect(nextStep(o, clientSecret)).toContain(
      "`kvdeploy versions` shows the failed version and the rollback",
    )
  })
})

describe("expiryText: how long until (or since) a certificate's expiry", () => {
  const now = Date.parse("2026-12-01T12:00:00Z")
  const at = (ms: number) => new Date(now + ms).toISOString()
  const hour = 3_600_000
  it("days from 2 days on, hours below, minutes below an hour, seconds below a minute, each rounded down", () => {
    expect(expiryText(at(90 * 24 * hour), now)).toBe("expires 2027-03-01 UTC (in 90 d)")
    expect(expiryText(at(48 * hour), now)).toBe("expires 2026-12-03 UTC (in 2 d)")
    expect(expiryText(at(47 * hour + 59 * 60_000), now)).toBe("expires 2026-12-03 UTC (in 47 h)")
    expect(expiryText(at(5 * hour + 30 * 60_000), now)).toBe("expires 2026-12-01 UTC (in 5 h)")
    expect(expiryText(at(59 * 60_000 + 59_000), now)).toBe("expires 2026-12-01 UTC (in 59 min)")
    expect(expiryText(at(30_000), now)).toBe("expires 2026-12-01 UTC (in 30 s)")
    expect(expiryText(at(-45_000), now)).toBe("expired 2026-12-01 UTC (45 s ago)")
    expect(expiryText(at(-3 * hour), now)).toBe("expired 2026-12-01 UTC (3 h ago)")
    expect(expiryText(at(-10 * 24 * hour), now)).toBe("expired 2026-11-21 UTC (10 d ago)")
    expect(expiryText(undefined, now)).toBe("expiry unknown")
  })

  it("says the date is UTC's, also for an expiry given with another offset (the UTC date, not the offset's)", () => {
    // 01:30 on 2 December at +03:00 is 22:30 on 1 December in UTC.
    expect(expiryText("2026-12-02T01:30:00+03:00", now)).toBe("expires 2026-12-01 UTC (in 10 h)")
  })

  it("names the leaf's own UTC date when a chain certificate expires first", async () => {
    const issued = await issue({ subject: "CN=leaf.example.test", notAfterDays: 30 })
    const leaf = leafSummary(new Uint8Array(issued.certificate.rawData), {
      notAfter: new Date("2026-12-20T23:30:00Z"),
      issuerFirst: { subject: "CN=issuer", notAfter: new Date("2026-12-20T23:30:00Z"), depth: 1 },
    })
    expect(leaf && deployedExpiryText(leaf, now)).toMatch(
      /^expires 2026-12-20 UTC \(in 19 d\): the leaf's issuer in the chain, CN=issuer, expires first \(the leaf \d{4}-\d\d-\d\d UTC\), and what is served breaks then$/,
    )
  })
})

describe("a refused credential's next step, for the credential in use", () => {
  const refused = forbidden(
    "no token for the vault: the credential was refused or is not available here (nothing was sent to the vault): …",
    "credential",
  )
  const using = (mode: CredentialInUse["mode"], tokenExchange = false): CredentialInUse => ({
    mode,
    tokenExchange,
    multiTenantAuthDisabled: false,
  })

  it("client_secret: the secret, and nothing of token files or managed identities", () => {
    const next = nextOf(refused, using("client_secret"))
    expect(next).toContain("AZURE_CLIENT_SECRET")
    expect(next).not.toContain("managed identity")
    expect(next).not.toContain("AZURE_FEDERATED_TOKEN_FILE")
  })

  it("workload_identity: the federated token file and the federated identity credential, not a secret", () => {
    const next = nextOf(refused, using("workload_identity"))
    expect(next).toContain("AZURE_FEDERATED_TOKEN_FILE")
    expect(next).toContain("federated identity credential")
    expect(next).not.toContain("AZURE_CLIENT_SECRET")
  })

  it("managed_identity asking a managed identity endpoint: a host that has one", () => {
    const next = nextOf(refused, using("managed_identity"))
    expect(next).toContain("run on an Azure host that has a managed identity")
    expect(next).not.toContain("AZURE_FEDERATED_TOKEN_FILE")
    expect(next).not.toContain("AZURE_CLIENT_SECRET")
  })

  it("managed_identity by AKS workload identity's token exchange: the token file and the federated identity credential, not a host", () => {
    const next = nextOf(refused, using("managed_identity", true))
    expect(next).toContain("AKS workload identity's token exchange")
    expect(next).toContain("AZURE_FEDERATED_TOKEN_FILE")
    expect(next).toContain("federated identity credential on the user-assigned identity")
    expect(next).not.toContain("run on")
    expect(next).not.toContain("AZURE_CLIENT_SECRET")
  })

  it("default: the chain's source meant to answer, which doctor names", () => {
    const next = nextOf(refused, using("default"))
    expect(next).toContain("default chain")
    expect(next).toContain("`kvdeploy doctor` names each source")
  })
})

describe("a vault in another tenant: the next step, for the credential in use", () => {
  const otherTenant = forbidden(
    "no token for the vault (nothing was sent): the vault is in tenant …",
    "tenant",
  )

  it("with AZURE_IDENTITY_DISABLE_MULTITENANTAUTH set: allowing the tenant takes unsetting it too", () => {
    const next = nextOf(otherTenant, { ...clientSecret, multiTenantAuthDisabled: true })
    expect(next).toContain("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
    expect(next).toContain("unset AZURE_IDENTITY_DISABLE_MULTITENANTAUTH")
  })

  it("without it: the tenant allowed, and nothing of the variable", () => {
    const next = nextOf(otherTenant, clientSecret)
    expect(next).toContain("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
    expect(next).not.toContain("AZURE_IDENTITY_DISABLE_MULTITENANTAUTH")
  })

  it("managed_identity: an identity of the vault's tenant, not a tenant to allow (it reads no allowed tenants)", () => {
    const next = nextOf(otherTenant, {
      mode: "managed_identity",
      tokenExchange: false,
      multiTenantAuthDisabled: true,
    })
    expect(next).toContain("a managed identity gets tokens of its own tenant only")
    expect(next).not.toContain("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
    expect(next).not.toContain("AZURE_IDENTITY_DISABLE_MULTITENANTAUTH")
  })
})

describe("the content line", () => {
  const contentLine = (o: Record<string, unknown>) =>
    outcomeLines(
      {
        target: { vaultUrl: "https://kv.vault.azure.net", certificateName: "api" },
        certificateId: "api",
        previous: undefined,
        newX5t: undefined,
        adopted: false,
        reason: "r",
        vaultCalls: 5,
        decisions: [],
        timings: { startedAtMs: 0, finishedAtMs: 1, durationMs: 1 },
        ...o,
      } as unknown as DeployOutcome,
      undefined,
      plain as never,
      0,
      clientSecret,
    ).find((l) => l.trimStart().startsWith("content")) ?? ""

  it("after a rollback says what the rollback wrote again, not that consumers read the imported type from now on", () => {
    const line = contentLine({
      _tag: "RolledBack",
      failedVersionId: "v2",
      rollbackVersionId: "v3",
      rollbackSource: "backing-secret",
      contentType: {
        imported: "application/x-pem-file",
        served: "application/x-pkcs12",
        change: "changed",
        restored: "application/x-pkcs12",
      },
    })
    expect(line).toBe(
      "  content     PEM (application/x-pem-file) imported; the rollback wrote PKCS#12 (application/x-pkcs12) again, as the vault served it before",
    )
  })

  it("after a failed rollback with no rollback version known, says to check what the vault serves", () => {
    const line = contentLine({
      _tag: "RollbackFailed",
      failedVersionId: "v2",
      rollbackVersionId: undefined,
      contentType: { imported: "application/x-pem-file", served: "application/x-pkcs12", change: "changed" },
    })
    expect(line).toBe(
      "  content     PEM (application/x-pem-file) imported, changed from application/x-pkcs12; the rollback failed: check which content type the vault serves now",
    )
  })

  it("a change that stands says consumers read the new type from now on", () => {
    const line = contentLine({
      _tag: "Succeeded",
      versionId: "v2",
      contentType: { imported: "application/x-pem-file", served: "application/x-pkcs12", change: "changed" },
    })
    expect(line).toContain("changed from application/x-pkcs12: consumers of the secret read PEM from now on")
  })
})
