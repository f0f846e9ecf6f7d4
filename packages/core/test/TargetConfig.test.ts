/** Target configuration: every rule, every problem reported at once with its field and fix. */
import { generateKeyPairSync } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import fc from "fast-check"
import {
  type ConfigProblem,
  certificateIdProblems,
  knownClouds,
  shownCloud,
  validateTargetConfig,
  validateTargetConfigSync,
} from "../src/index.js"

const base = { vault_url: "https://my-vault.vault.azure.net", certificate_name: "api-prod" }

const problemsOf = (input: unknown): ReadonlyArray<ConfigProblem> => {
  const r = validateTargetConfigSync(input)
  return Result.isFailure(r) ? r.failure.problems : []
}
const ok = (input: unknown) => {
  const r = validateTargetConfigSync(input)
  if (Result.isFailure(r)) assert.fail(r.failure.message)
  return r.success
}
const fieldsOf = (input: unknown) => problemsOf(input).map((p) => p.field)

describe("vault_url", () => {
  it("a private endpoint's name (NAME.privatelink.vaultcore.…) is told to use the vault's own name, of its cloud", () => {
    for (const [zone, suffix] of [
      ["azure.net", "vault.azure.net"],
      ["usgovcloudapi.net", "vault.usgovcloudapi.net"],
      ["azure.cn", "vault.azure.cn"],
    ] as const) {
      const problems = problemsOf({ ...base, vault_url: `https://My-Vault.privatelink.vaultcore.${zone}/` })
      assert.deepStrictEqual(
        problems.map((p) => p.field),
        ["vault_url"],
      )
      assert.include(problems[0]?.message ?? "", "a private endpoint's name in Azure's private DNS zone")
      assert.match(
        problems[0]?.fix ?? "",
        new RegExp(`^use the vault's own name, https://my-vault\\.${suffix.replace(/\./g, "\\.")}:`),
      )
    }
    // Another host is told as before.
    assert.include(
      problemsOf({ ...base, vault_url: "https://my-vault.example.com" })[0]?.fix ?? "",
      "declare cloud:",
    )
  })

  it("accepts the three clouds and derives the authority host and Key Vault resource", () => {
    const pub = ok(base)
    assert.strictEqual(pub.vaultUrl, "https://my-vault.vault.azure.net")
    assert.strictEqual(pub.vaultName, "my-vault")
    assert.deepStrictEqual(pub.cloud, {
      name: "AzurePublic",
      vaultDnsSuffix: "vault.azure.net",
      authorityHost: "https://login.microsoftonline.com",
      keyVaultResource: "https://vault.azure.net",
    })
    const gov = ok({ ...base, vault_url: "https://my-vault.vault.usgovcloudapi.net" })
    assert.strictEqual(gov.cloud.authorityHost, "https://login.microsoftonline.us")
    assert.strictEqual(gov.cloud.keyVaultResource, "https://vault.usgovcloudapi.net")
    const cn = ok({ ...base, vault_url: "https://my-vault.vault.azure.cn" })
    assert.strictEqual(cn.cloud.authorityHost, "https://login.chinacloudapi.cn")
    assert.strictEqual(cn.cloud.keyVaultResource, "https://vault.azure.cn")
  })

  it("normalises a trailing slash, an explicit :443 and upper case", () => {
    for (const url of [
      "https://my-vault.vault.azure.net/",
      "https://my-vault.vault.azure.net:443",
      "https://MY-VAULT.vault.azure.net:443/",
    ]) {
      assert.strictEqual(ok({ ...base, vault_url: url }).vaultUrl, "https://my-vault.vault.azure.net")
    }
  })

  it("refuses http, paths, query strings, fragments, credentials and other ports with a fix each", () => {
    const cases: Array<[string, RegExp]> = [
      ["http://my-vault.vault.azure.net", /https only/],
      ["https://my-vault.vault.azure.net/secrets/x", /has a path \(\/secrets\/x\)/],
      ["https://my-vault.vault.azure.net/?api-version=7.4", /query string/],
      ["https://my-vault.vault.azure.net/#x", /fragment/],
      ["https://user:pw@my-vault.vault.azure.net", /credentials/],
      ["https://my-vault.vault.azure.net:8443", /port 8443/],
      ["not a url", /not a URL/],
      ["not-a-url", /not a URL/],
      ["", /is empty/],
    ]
    for (const [url, message] of cases) {
      const problems = problemsOf({ ...base, vault_url: url })
      assert.isTrue(
        problems.some((p) => p.field === "vault_url" && message.test(p.message) && p.fix.length > 0),
        `${url}: ${JSON.stringify(problems)}`,
      )
    }
  })

  it("refuses what the URL parser would mend silently: control characters, spaces, a backslash, other than two slashes", () => {
    const cases: Array<[string, string, string]> = [
      ["https://my\nvault.vault.azure.net", "holds a line break (inside it)", "on one line"],
      ["https://my-vault.vault.azure.net\n", "holds a line break (around it)", "on one line"],
      ["https://my-vault.vault\t.azure.net", "holds a tab (inside it)", "on one line"],
      ["\u0000https://my-vault.vault.azure.net", "holds a control character (around it)", "on one line"],
      [" https://my-vault.vault.azure.net", "holds a space (at its start or end)", "without spaces"],
      ["https://my-vault.vault.azure.net ", "holds a space (at its start or end)", "without spaces"],
      ["https://my vault.vault.azure.net", "holds a space (inside it)", "without spaces"],
      [
        "https://my-\u00advault.vault.azure.net",
        "holds an invisible formatting character",
        "type the vault's URL again",
      ],
      [
        "https://my-vault\u200b.vault.azure.net",
        "holds an invisible formatting character",
        "type the vault's URL again",
      ],
      ["https:\\\\my-vault.vault.azure.net", "holds a backslash", "forward slashes"],
      ["https:/\\my-vault.vault.azure.net", "holds a backslash", "forward slashes"],
      [
        "https:///my-vault.vault.azure.net",
        "does not have exactly two slashes after https:",
        "write https:// and the host",
      ],
      [
        "https:/my-vault.vault.azure.net",
        "does not have exactly two slashes after https:",
        "write https:// and the host",
      ],
      [
        "HTTPS:my-vault.vault.azure.net",
        "does not have exactly two slashes after https:",
        "write https:// and the host",
      ],
    ]
    for (const [url, message, fix] of cases) {
      const problems = problemsOf({ ...base, vault_url: url })
      assert.deepStrictEqual(
        problems.map((p) => p.field),
        ["vault_url"],
        JSON.stringify(url),
      )
      assert.include(problems[0]?.message ?? "", message, JSON.stringify(url))
      assert.include(problems[0]?.fix ?? "", fix, JSON.stringify(url))
      assert.include(problems[0]?.fix ?? "", "https://my-vault.vault.azure.net")
    }
    // Written plainly, the same vault is taken.
    assert.strictEqual(
      ok({ ...base, vault_url: "https://my-vault.vault.azure.net" }).vaultUrl,
      "https://my-vault.vault.azure.net",
    )
  })

  it("a vault URL whose path is a pasted key names the path by its length, not its text", () => {
    const b64 = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ format: "der", type: "pkcs8" })
      .toString("base64")
    const problems = problemsOf({ ...base, vault_url: `https://my-vault.vault.azure.net/${b64}` })
    assert.isTrue(
      problems.some((p) => p.field === "vault_url" && /has a path \(.*not shown\)/.test(p.message)),
    )
    assert.notInclude(JSON.stringify(problems), b64.slice(40, 80))
  })

  it("a vault URL whose host, scheme or vault name is key text names it by its length", () => {
    const b64 = generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ format: "der", type: "pkcs8" })
      .toString("base64")
    const hex = "a6dbf228".repeat(8)
    for (const url of [
      `https://${b64.replace(/[+/=]/g, "")}`,
      `https://${hex}c24e.example.com`,
      `https://${hex}.vault.azure.net`,
      `${b64.replace(/[+/=]/g, "")}://127.0.0.1:39121`,
    ]) {
      const problems = problemsOf({ ...base, vault_url: url })
      assert.isTrue(
        problems.some((p) => p.field === "vault_url"),
        url,
      )
      const text = JSON.stringify(problems).toLowerCase()
      assert.notInclude(text, b64.replace(/[+/=]/g, "").slice(20, 60).toLowerCase(), url)
      assert.notInclude(text, hex, url)
    }
  })

  it("refuses Managed HSM with a pointed message", () => {
    const [p] = problemsOf({ ...base, vault_url: "https://my-hsm.managedhsm.azure.net" })
    assert.strictEqual(p?.field, "vault_url")
    assert.match(p?.message ?? "", /Managed HSM/)
    assert.match(p?.fix ?? "", /vault\.azure\.net/)
  })

  it("checks the vault name: 3-24, letters, digits, single hyphens, starts with a letter, no trailing hyphen", () => {
    for (const name of ["abc", "a-b-c", "kv1", "a23456789012345678901234"])
      ok({ ...base, vault_url: `https://${name}.vault.azure.net` })
    for (const name of ["ab", "1abc", "abc-", "a--b", "a_b", "a234567890123456789012345", "a.b"]) {
      assert.deepStrictEqual(
        fieldsOf({ ...base, vault_url: `https://${name}.vault.azure.net` }),
        ["vault_url"],
        name,
      )
    }
  })

  it("refuses other suffixes and loopback hosts unless a custom cloud is declared", () => {
    assert.match(
      problemsOf({ ...base, vault_url: "https://kv.vault.local.azurestack.external" })[0]?.fix ?? "",
      /cloud/,
    )
    assert.match(
      problemsOf({ ...base, vault_url: "https://127.0.0.1:8443" })[0]?.message ?? "",
      /custom cloud/,
    )
    const cloud = {
      vault_dns_suffix: "vault.local.azurestack.external",
      authority_host: "https://login.local.azurestack.external",
      keyvault_resource: "https://vault.local.azurestack.external",
    }
    const stack = ok({ ...base, vault_url: "https://kv1.vault.local.azurestack.external", cloud })
    assert.strictEqual(stack.cloud.name, "Custom")
    assert.strictEqual(stack.cloud.authorityHost, "https://login.local.azurestack.external")
    const emu = ok({
      ...base,
      vault_url: "https://127.0.0.1:8443/",
      cloud: {
        vault_dns_suffix: "vault.emulator",
        authority_host: "https://127.0.0.1:8444",
        keyvault_resource: "https://vault.emulator",
      },
    })
    assert.strictEqual(emu.vaultUrl, "https://127.0.0.1:8443")
    assert.strictEqual(
      ok({ ...base, vault_url: "https://localhost:9000", cloud }).vaultUrl,
      "https://localhost:9000",
    )
    // A custom cloud does not accept a host outside its suffix.
    assert.match(problemsOf({ ...base, cloud })[0]?.message ?? "", /vault_dns_suffix/)
    // Its own fields are checked.
    assert.deepStrictEqual(
      fieldsOf({
        ...base,
        cloud: { vault_dns_suffix: "", authority_host: "http://x", keyvault_resource: 3, client_secret: "s" },
      }).sort(),
      ["cloud.authority_host", "cloud.client_secret", "cloud.keyvault_resource", "cloud.vault_dns_suffix"],
    )
    // A suffix given but of the wrong type or empty is not said to be missing.
    const suffixSaid = (cloud: Record<string, unknown>) =>
      problemsOf({
        ...base,
        cloud: {
          authority_host: "https://login.example.test",
          keyvault_resource: "https://vault.example.test",
          ...cloud,
        },
      })
        .filter((p) => p.field === "cloud.vault_dns_suffix")
        .map((p) => p.message)
    assert.deepStrictEqual(suffixSaid({ vault_dns_suffix: 5 }), ["is not a string"])
    assert.deepStrictEqual(suffixSaid({ vault_dns_suffix: "" }), ["is empty"])
    assert.deepStrictEqual(suffixSaid({}), ["is missing"])
  })
})

describe("cloud: a custom block that mixes the known clouds", () => {
  const publicCloud = {
    vault_dns_suffix: "vault.azure.net",
    authority_host: "https://login.microsoftonline.com",
    keyvault_resource: "https://vault.azure.net",
  }

  it("is refused at validation, naming each known field's cloud, with the fix for the vault's cloud", () => {
    const problems = problemsOf({
      ...base,
      cloud: { ...publicCloud, authority_host: "https://login.chinacloudapi.cn" },
    })
    assert.deepStrictEqual(
      problems.map((p) => p.field),
      ["cloud"],
    )
    assert.strictEqual(
      problems[0]?.message,
      "mixes Azure clouds: vault_dns_suffix vault.azure.net and keyvault_resource https://vault.azure.net are the public cloud's (AzurePublic), while authority_host https://login.chinacloudapi.cn is the China cloud's (AzureChina); a vault accepts only tokens its own cloud's Entra ID issued for its own cloud's resource, so this target could never get one it accepts",
    )
    assert.strictEqual(
      problems[0]?.fix,
      "vault_url is a vault of the public cloud: remove the cloud block (vault_url's suffix selects the public cloud's authority_host and keyvault_resource by itself), or make the fields the public cloud's: vault_dns_suffix vault.azure.net, authority_host https://login.microsoftonline.com, keyvault_resource https://vault.azure.net",
    )
  })

  it("judges the token resource too, whatever its spelling (case, port 443, a trailing slash)", () => {
    for (const keyvault_resource of [
      "https://vault.usgovcloudapi.net",
      "https://VAULT.usgovcloudapi.net:443/",
    ]) {
      const [p, ...rest] = problemsOf({ ...base, cloud: { ...publicCloud, keyvault_resource } })
      assert.strictEqual(rest.length, 0, keyvault_resource)
      assert.strictEqual(p?.field, "cloud", keyvault_resource)
      assert.match(
        p?.message ?? "",
        /keyvault_resource https:\/\/vault\.usgovcloudapi\.net is the US Government cloud's \(AzureUSGovernment\)/,
      )
    }
  })

  it("refuses a keyvault_resource with a path: /.default told to go (kvdeploy adds it), another path not echoed", () => {
    for (const keyvault_resource of [
      "https://vault.azure.net/.default",
      "https://vault.azure.net/.default/",
      "https://vault.azure.net/.DEFAULT",
    ]) {
      const problems = problemsOf({ ...base, cloud: { ...publicCloud, keyvault_resource } })
      assert.deepStrictEqual(
        problems.map((p) => p.field),
        ["cloud.keyvault_resource"],
        keyvault_resource,
      )
      assert.match(problems[0]?.message ?? "", /\/\.default\/\.default/)
      assert.strictEqual(
        problems[0]?.fix,
        'drop /.default: kvdeploy adds it (write "https://vault.azure.net")',
      )
    }
    const pathed = problemsOf({
      ...base,
      cloud: { ...publicCloud, keyvault_resource: "https://vault.usgovcloudapi.net/some/path" },
    })
    assert.deepStrictEqual(
      pathed.map((p) => [p.field, p.fix]),
      [["cloud.keyvault_resource", 'write scheme and host only: "https://vault.usgovcloudapi.net"']],
    )
    // The operator's path is not echoed (it may be anything pasted there).
    assert.notInclude(JSON.stringify(pathed), "some/path")
    assert.include(
      problemsOf({ ...base, cloud: { ...publicCloud, keyvault_resource: "https://vault.azure.net/?x=1" } })[0]
        ?.message ?? "",
      "has a query",
    )
    // authority_host keeps its path (AD FS: https://adfs.HOST/adfs).
    assert.strictEqual(
      ok({
        vault_url: "https://kv1.vault.local.azurestack.external",
        certificate_name: "api",
        cloud: {
          vault_dns_suffix: "vault.local.azurestack.external",
          authority_host: "https://adfs.local.azurestack.external/adfs",
          keyvault_resource: "https://vault.local.azurestack.external",
        },
      }).cloud.authorityHost,
      "https://adfs.local.azurestack.external/adfs",
    )
  })

  it("points the fix to vault_url's cloud, and still checks vault_url against the block's suffix", () => {
    const problems = problemsOf({
      ...base,
      vault_url: "https://my-vault.vault.azure.cn",
      cloud: {
        vault_dns_suffix: "vault.azure.net",
        authority_host: "https://login.chinacloudapi.cn",
        keyvault_resource: "https://vault.azure.cn",
      },
    })
    assert.deepStrictEqual(
      problems.map((p) => p.field),
      ["cloud", "vault_url"],
    )
    assert.match(problems[0]?.message ?? "", /vault_dns_suffix vault\.azure\.net is the public cloud's/)
    assert.match(problems[0]?.fix ?? "", /^vault_url is a vault of the China cloud: remove the cloud block/)
  })

  it("an unknown suffix with another cloud's authority and resource: the fix lists each cloud's pair", () => {
    const [p, ...rest] = problemsOf({
      ...base,
      vault_url: "https://kv1.vault.local.azurestack.external",
      cloud: {
        vault_dns_suffix: "vault.local.azurestack.external",
        authority_host: "https://login.microsoftonline.us",
        keyvault_resource: "https://vault.azure.cn",
      },
    })
    assert.strictEqual(rest.length, 0)
    assert.strictEqual(p?.field, "cloud")
    assert.notInclude(p?.message ?? "", "vault_dns_suffix")
    assert.match(
      p?.message ?? "",
      /authority_host https:\/\/login\.microsoftonline\.us is the US Government cloud's/,
    )
    assert.match(p?.message ?? "", /keyvault_resource https:\/\/vault\.azure\.cn is the China cloud's/)
    assert.match(
      p?.fix ?? "",
      /^make authority_host and keyvault_resource one cloud's: the public cloud's are authority_host https:\/\/login\.microsoftonline\.com, keyvault_resource https:\/\/vault\.azure\.net; the US Government cloud's/,
    )
  })

  it("accepts unknown endpoints beside a known one, and a block that is one known cloud's throughout", () => {
    // Azure Stack Hub with Entra ID: its own suffix and resource, the public authority.
    ok({
      ...base,
      vault_url: "https://kv1.vault.local.azurestack.external",
      cloud: {
        vault_dns_suffix: "vault.local.azurestack.external",
        authority_host: "https://login.microsoftonline.com",
        keyvault_resource: "https://vault.local.azurestack.external",
      },
    })
    // The emulator: loopback hosts, the public cloud's resource (its default).
    ok({
      ...base,
      vault_url: "https://127.0.0.1:8443",
      cloud: {
        vault_dns_suffix: "127.0.0.1",
        authority_host: "https://127.0.0.1:8444",
        keyvault_resource: "https://vault.azure.net",
      },
    })
    // A private authority in front of a public vault.
    ok({ ...base, cloud: { ...publicCloud, authority_host: "https://login.example.internal" } })
    // One known cloud's three endpoints: accepted, as that known cloud (see "a block equal to a known cloud").
    assert.strictEqual(ok({ ...base, cloud: publicCloud }).cloud.name, "AzurePublic")
    assert.strictEqual(
      ok({
        ...base,
        vault_url: "https://my-vault.vault.usgovcloudapi.net",
        cloud: {
          vault_dns_suffix: "vault.usgovcloudapi.net",
          authority_host: "https://login.microsoftonline.us/",
          keyvault_resource: "https://vault.usgovcloudapi.net",
        },
      }).cloud.keyVaultResource,
      "https://vault.usgovcloudapi.net",
    )
  })
})

describe("cloud: Entra ID authority host aliases", () => {
  // MSAL's instance discovery metadata (@azure/msal-common AuthorityMetadata): each cloud's aliases.
  const aliases: ReadonlyArray<readonly [string, "AzurePublic" | "AzureUSGovernment" | "AzureChina"]> = [
    ["https://login.windows.net", "AzurePublic"],
    ["https://login.microsoft.com", "AzurePublic"],
    ["https://sts.windows.net", "AzurePublic"],
    ["https://login.usgovcloudapi.net", "AzureUSGovernment"],
    ["https://login.partner.microsoftonline.cn", "AzureChina"],
  ]
  const clouds = {
    AzurePublic: {
      vault: "https://my-vault.vault.azure.net",
      suffix: "vault.azure.net",
      resource: "https://vault.azure.net",
    },
    AzureUSGovernment: {
      vault: "https://my-vault.vault.usgovcloudapi.net",
      suffix: "vault.usgovcloudapi.net",
      resource: "https://vault.usgovcloudapi.net",
    },
    AzureChina: {
      vault: "https://my-vault.vault.azure.cn",
      suffix: "vault.azure.cn",
      resource: "https://vault.azure.cn",
    },
  } as const

  it("an alias with another cloud's suffix and resource is refused as a mix, shown as the alias written", () => {
    for (const [authority_host, own] of aliases) {
      for (const [other, c] of Object.entries(clouds)) {
        if (other === own) continue
        const problems = problemsOf({
          ...base,
          vault_url: c.vault,
          cloud: { vault_dns_suffix: c.suffix, authority_host, keyvault_resource: c.resource },
        })
        assert.deepStrictEqual(
          problems.map((p) => p.field),
          ["cloud"],
          `${authority_host} in ${other}`,
        )
        assert.include(problems[0]?.message ?? "", `authority_host ${authority_host} is `, authority_host)
        assert.include(problems[0]?.message ?? "", `(${own})`, authority_host)
        assert.match(problems[0]?.fix ?? "", /^vault_url is a vault of /)
      }
    }
  })

  it("an alias with its own cloud's suffix and resource is accepted as that known cloud, its canonical host", () => {
    for (const [authority_host, own] of aliases) {
      const c = clouds[own]
      const target = ok({
        ...base,
        vault_url: c.vault,
        cloud: {
          vault_dns_suffix: c.suffix,
          authority_host: `${authority_host}/`,
          keyvault_resource: c.resource,
        },
      })
      assert.strictEqual(target.cloud.name, own)
      assert.strictEqual(target.cloud.authorityHost, knownClouds.find((k) => k.name === own)?.authorityHost)
    }
  })
})

describe("cloud: a block equal to a known cloud", () => {
  const endpoints = {
    AzurePublic: {
      vault: "https://my-vault.vault.azure.net",
      block: {
        vault_dns_suffix: "vault.azure.net",
        authority_host: "https://login.microsoftonline.com",
        keyvault_resource: "https://vault.azure.net",
      },
    },
    AzureUSGovernment: {
      vault: "https://my-vault.vault.usgovcloudapi.net",
      block: {
        vault_dns_suffix: "vault.usgovcloudapi.net",
        authority_host: "https://login.microsoftonline.us",
        keyvault_resource: "https://vault.usgovcloudapi.net",
      },
    },
    AzureChina: {
      vault: "https://my-vault.vault.azure.cn",
      block: {
        vault_dns_suffix: "vault.azure.cn",
        authority_host: "https://login.chinacloudapi.cn",
        keyvault_resource: "https://vault.azure.cn",
      },
    },
  } as const

  it("selects that known cloud, exactly as vault_url alone does (instance discovery and the challenge check stay on)", () => {
    for (const [name, c] of Object.entries(endpoints)) {
      const alone = ok({ ...base, vault_url: c.vault }).cloud
      assert.strictEqual(alone.name, name)
      for (const block of [
        c.block,
        // Spelt otherwise, as the existing validation tolerates: a leading dot and upper case in the
        // suffix, a trailing slash and :443 on the URLs.
        {
          vault_dns_suffix: `.${c.block.vault_dns_suffix.toUpperCase()}`,
          authority_host: `${c.block.authority_host}:443/`,
          keyvault_resource: `${c.block.keyvault_resource}/`,
        },
      ]) {
        const target = ok({ ...base, vault_url: c.vault, cloud: block })
        assert.deepStrictEqual(target.cloud, alone, `${name} ${JSON.stringify(block)}`)
      }
    }
  })

  it("with its own known name, or a free label: still that known cloud (the label is only a label)", () => {
    const c = endpoints.AzureChina
    for (const name of ["AzureChinaCloud", "AzureChina", "corp-china", "AzureStackHub"]) {
      assert.strictEqual(
        ok({ ...base, vault_url: c.vault, cloud: { ...c.block, name } }).cloud.name,
        "AzureChina",
      )
    }
    // A known name that is another cloud's is refused, as before.
    assert.deepStrictEqual(
      fieldsOf({ ...base, vault_url: c.vault, cloud: { ...c.block, name: "AzureCloud" } }),
      ["cloud.name"],
    )
  })

  it("a path on authority_host or another port on an endpoint is no known cloud's: the block stays custom", () => {
    const c = endpoints.AzurePublic
    for (const block of [
      { ...c.block, authority_host: "https://login.microsoftonline.com/my-tenant" },
      { ...c.block, authority_host: "https://login.microsoftonline.com:8443" },
    ]) {
      assert.strictEqual(ok({ ...base, cloud: block }).cloud.name, "Custom", JSON.stringify(block))
    }
  })

  it("a loopback vault_url keeps the block custom: a loopback host is no vault of a known cloud", () => {
    const target = ok({ ...base, vault_url: "https://127.0.0.1:8443", cloud: endpoints.AzurePublic.block })
    assert.strictEqual(target.cloud.name, "Custom")
    assert.strictEqual(target.vaultName, "127.0.0.1")
  })

  it("vault_url must be a vault of that cloud: port 443 only, its suffix, each refused with the fix", () => {
    const c = endpoints.AzurePublic
    const [port, ...rest] = problemsOf({ ...base, vault_url: `${c.vault}:8443`, cloud: c.block })
    assert.strictEqual(rest.length, 0)
    assert.strictEqual(port?.field, "vault_url")
    assert.match(port?.message ?? "", /port 8443; Key Vault listens on 443 only/)
    const [other, ...more] = problemsOf({
      ...base,
      vault_url: "https://my-vault.vault.azure.cn",
      cloud: c.block,
    })
    assert.strictEqual(more.length, 0)
    assert.strictEqual(other?.field, "vault_url")
    assert.strictEqual(
      other?.message,
      'host "my-vault.vault.azure.cn" is no vault of the public cloud (.vault.azure.net), whose endpoints the cloud block gives',
    )
    assert.match(other?.fix ?? "", /remove the cloud block \(vault_url's suffix selects its cloud\)$/)
  })

  it("shownCloud says the block equals the cloud, with an alias host and a label named", () => {
    const c = endpoints.AzurePublic
    const show = (cloud: unknown, vault_url: string = c.vault) =>
      shownCloud(ok({ ...base, vault_url, ...(cloud === undefined ? {} : { cloud }) }).cloud, cloud)
    assert.strictEqual(show(undefined), "AzurePublic")
    assert.strictEqual(show({ name: "AzureCloud" }), "AzurePublic")
    assert.strictEqual(show(c.block), "AzurePublic: the cloud block's endpoints are the public cloud's")
    assert.strictEqual(
      show({ ...c.block, name: "corp", authority_host: "https://login.windows.net/" }),
      "AzurePublic: the cloud block's endpoints are the public cloud's; authority_host https://login.windows.net is an alias of its https://login.microsoftonline.com; cloud.name \"corp\" is only a label",
    )
    assert.strictEqual(show(c.block, "https://localhost:8443"), "custom cloud .vault.azure.net")
  })
})

describe("cloud: a known cloud's name with some endpoints", () => {
  it("each missing endpoint's fix gives the named cloud's, and says the name alone selects it", () => {
    const problems = problemsOf({
      ...base,
      cloud: { name: "AzurePublic", vault_dns_suffix: "vault.azure.net" },
    })
    assert.deepStrictEqual(
      problems.map((p) => p.field),
      ["cloud.authority_host", "cloud.keyvault_resource"],
    )
    assert.strictEqual(
      problems[0]?.fix,
      "set it to https://login.microsoftonline.com (the public cloud's), or remove cloud.vault_dns_suffix: cloud.name AzurePublic alone selects the public cloud and its endpoints, as vault_url's suffix does",
    )
    assert.strictEqual(
      problems[1]?.fix,
      "set it to https://vault.azure.net (the public cloud's), or remove cloud.vault_dns_suffix: cloud.name AzurePublic alone selects the public cloud and its endpoints, as vault_url's suffix does",
    )
    // Two given (an alias authority host is the cloud's): both named to remove.
    const [suffix, ...rest] = problemsOf({
      ...base,
      vault_url: "https://my-vault.vault.usgovcloudapi.net",
      cloud: {
        name: "AzureGovernment",
        authority_host: "https://login.usgovcloudapi.net",
        keyvault_resource: "https://vault.usgovcloudapi.net/",
      },
    })
    assert.strictEqual(rest.length, 0)
    assert.strictEqual(suffix?.field, "cloud.vault_dns_suffix")
    assert.strictEqual(
      suffix?.fix,
      "set it to vault.usgovcloudapi.net (the US Government cloud's), or remove cloud.authority_host and cloud.keyvault_resource: cloud.name AzureGovernment alone selects the US Government cloud and its endpoints, as vault_url's suffix does",
    )
  })

  it("no such fix when a given endpoint is another's, or vault_url is no vault of the named cloud", () => {
    for (const input of [
      { ...base, cloud: { name: "AzurePublic", vault_dns_suffix: "vault.azure.cn" } },
      { ...base, cloud: { name: "AzurePublic", authority_host: "https://login.example.internal" } },
      { ...base, cloud: { name: "AzurePublic", vault_dns_suffix: "vault" } },
      {
        ...base,
        vault_url: "https://my-vault.vault.azure.cn",
        cloud: { name: "AzurePublic", vault_dns_suffix: "vault.azure.net" },
      },
      { ...base, cloud: { name: "corp", vault_dns_suffix: "vault.azure.net" } },
    ]) {
      const problems = problemsOf(input)
      assert.isAbove(problems.length, 0, JSON.stringify(input))
      for (const p of problems) assert.notInclude(p.fix, "alone selects", JSON.stringify(input))
    }
  })
})

describe("cloud.name", () => {
  const publicCloud = {
    vault_dns_suffix: "vault.azure.net",
    authority_host: "https://login.microsoftonline.com",
    keyvault_resource: "https://vault.azure.net",
  }
  const chinaCloud = {
    vault_dns_suffix: "vault.azure.cn",
    authority_host: "https://login.chinacloudapi.cn",
    keyvault_resource: "https://vault.azure.cn",
  }
  const china = { ...base, vault_url: "https://my-vault.vault.azure.cn" }

  it("alone, a known cloud's name that agrees with vault_url selects that known cloud", () => {
    const names: ReadonlyArray<readonly [string, string, string]> = [
      ["AzurePublicCloud", "https://my-vault.vault.azure.net", "AzurePublic"],
      ["AzureCloud", "https://my-vault.vault.azure.net", "AzurePublic"],
      ["AzurePublic", "https://my-vault.vault.azure.net", "AzurePublic"],
      ["AzureUSGovernment", "https://my-vault.vault.usgovcloudapi.net", "AzureUSGovernment"],
      ["AzureGovernment", "https://my-vault.vault.usgovcloudapi.net", "AzureUSGovernment"],
      ["AzureUSGovernmentCloud", "https://my-vault.vault.usgovcloudapi.net", "AzureUSGovernment"],
      ["AzureChinaCloud", "https://my-vault.vault.azure.cn", "AzureChina"],
      ["AzureChina", "https://my-vault.vault.azure.cn", "AzureChina"],
    ]
    for (const [name, vault_url, cloud] of names) {
      const target = ok({ ...base, vault_url, cloud: { name } })
      // The known cloud itself, as with no block (instance discovery on): not a custom one.
      assert.deepStrictEqual(target.cloud, ok({ ...base, vault_url }).cloud, name)
      assert.strictEqual(target.cloud.name, cloud, name)
    }
  })

  it("alone, a known cloud's name for a vault of another cloud is refused, naming both clouds and the fix", () => {
    const problems = problemsOf({ ...base, cloud: { name: "AzureChinaCloud" } })
    assert.deepStrictEqual(
      problems.map((p) => p.field),
      ["cloud.name"],
    )
    assert.strictEqual(
      problems[0]?.message,
      '"AzureChinaCloud" names the China cloud (AzureChina), but vault_url is a vault of the public cloud (AzurePublic, .vault.azure.net); a vault accepts only tokens of its own cloud, so the name cannot select another',
    )
    assert.strictEqual(
      problems[0]?.fix,
      "set cloud.name to AzurePublicCloud, or remove the cloud block (vault_url's suffix selects the public cloud by itself); if the vault is in the China cloud, fix vault_url: its host ends with .vault.azure.cn",
    )
    // A loopback or custom-suffix vault: a known cloud's name declares no custom cloud.
    const loopback = problemsOf({
      ...base,
      vault_url: "https://127.0.0.1:8443",
      cloud: { name: "AzurePublicCloud" },
    })
    // One problem: vault_url judged as with no block would add a second, asking for the cloud block
    // that is there.
    assert.deepStrictEqual(
      loopback.map((p) => p.field),
      ["cloud.name"],
    )
    // vault_url's own problems are still said with a refused name (every problem at once).
    assert.deepStrictEqual(
      problemsOf({
        ...base,
        vault_url: "http://kv-prod.vault.azure.net",
        cloud: { name: "AzurePublicClod" },
      }).map((p) => [p.field, p.message]),
      [
        ["cloud.name", problemsOf({ ...base, cloud: { name: "AzurePublicClod" } })[0]?.message],
        ["vault_url", "uses http; Key Vault is served over https only"],
      ],
    )
    assert.match(
      loopback[0]?.message ?? "",
      /vault_url is no vault of it \(a vault of the public cloud is https:\/\/NAME\.vault\.azure\.net\)/,
    )
    assert.match(
      loopback[0]?.fix ?? "",
      /declare cloud: \{ vault_dns_suffix, authority_host, keyvault_resource \}/,
    )
  })

  it("alone, a name that is no known cloud's is refused with the known names and the custom cloud's fields", () => {
    const problems = problemsOf({ ...base, cloud: { name: "MyCloud" } })
    assert.deepStrictEqual(
      problems.map((p) => p.field),
      ["cloud.name"],
    )
    assert.strictEqual(
      problems[0]?.message,
      '"MyCloud" is not a known cloud\'s name, and the cloud block has no endpoints: a name alone selects a known cloud only',
    )
    assert.match(
      problems[0]?.fix ?? "",
      /^for a known cloud use its name \(AzurePublicCloud, AzureUSGovernment, AzureChinaCloud/,
    )
    assert.match(problems[0]?.fix ?? "", /add vault_dns_suffix, authority_host and keyvault_resource$/)
  })

  it("is exact: a known name in another case or misspelt is refused with the right one, alone or with endpoints", () => {
    for (const [name, right] of [
      ["azurechinacloud", "AzureChinaCloud"],
      ["AZURECHINA", "AzureChina"],
      ["AzureChinaClod", "AzureChinaCloud"],
    ] as const) {
      for (const cloud of [{ name }, { ...chinaCloud, name }]) {
        const problems = problemsOf({ ...china, cloud })
        assert.deepStrictEqual(
          problems.map((p) => p.field),
          ["cloud.name"],
          name,
        )
        assert.match(problems[0]?.fix ?? "", new RegExp(`^did you mean ${right}\\? known clouds: `), name)
      }
    }
    for (const name of [3, "", ["AzureChinaCloud"]]) {
      const problems = problemsOf({ ...china, cloud: { ...chinaCloud, name } })
      assert.deepStrictEqual(
        problems.map((p) => p.field),
        ["cloud.name"],
      )
      assert.match(problems[0]?.fix ?? "", /^use a known cloud's name: AzurePublicCloud, /)
    }
  })

  it("with endpoints, a known cloud's name whose fields are another cloud's is refused, naming both clouds", () => {
    const problems = problemsOf({ ...base, cloud: { ...publicCloud, name: "AzureChinaCloud" } })
    assert.deepStrictEqual(
      problems.map((p) => p.field),
      ["cloud.name"],
    )
    assert.strictEqual(
      problems[0]?.message,
      "\"AzureChinaCloud\" names the China cloud (AzureChina), but vault_dns_suffix vault.azure.net, authority_host https://login.microsoftonline.com and keyvault_resource https://vault.azure.net are the public cloud's (AzurePublic); a vault accepts only tokens its own cloud's Entra ID issued for its own cloud's resource, so a block and its name must be one cloud's",
    )
    assert.strictEqual(
      problems[0]?.fix,
      "vault_url is a vault of the public cloud: remove the cloud block (vault_url's suffix selects the public cloud's endpoints by itself), or set cloud.name to AzurePublicCloud (the fields are the public cloud's)",
    )
    // One field of another cloud (an alias among them) with the name's own vault: the fix gives that field.
    const one = problemsOf({
      ...china,
      cloud: { ...chinaCloud, authority_host: "https://login.windows.net", name: "AzureChina" },
    })
    assert.deepStrictEqual(
      one.map((p) => p.field),
      ["cloud.name"],
    )
    assert.match(
      one[0]?.message ?? "",
      /but authority_host https:\/\/login\.windows\.net is the public cloud's \(AzurePublic\);/,
    )
    assert.match(
      one[0]?.fix ?? "",
      /^vault_url is a vault of the China cloud, as the name says: .*make the fields the China cloud's: authority_host https:\/\/login\.chinacloudapi\.cn$/,
    )
    // A known cloud's name on a custom cloud's suffix (Azure Stack): the name says where the vault is not.
    const stack = problemsOf({
      ...base,
      vault_url: "https://kv1.vault.local.azurestack.external",
      cloud: {
        name: "AzurePublicCloud",
        vault_dns_suffix: "vault.local.azurestack.external",
        authority_host: "https://login.microsoftonline.com",
        keyvault_resource: "https://vault.local.azurestack.external",
      },
    })
    assert.deepStrictEqual(
      stack.map((p) => p.field),
      ["cloud.name"],
    )
    assert.match(
      stack[0]?.message ?? "",
      /vault_dns_suffix vault\.local\.azurestack\.external is no vault suffix of it \(vault\.azure\.net\) but a custom cloud's/,
    )
    assert.match(
      stack[0]?.fix ?? "",
      /^for a custom cloud \(Azure Stack, a private cloud, the emulator\) remove cloud\.name or make it a label of your own/,
    )
  })

  it("with endpoints, a name that agrees, or a label of the operator's own, changes nothing", () => {
    const agreeing = ok({ ...china, cloud: { ...chinaCloud, name: "AzureChinaCloud" } })
    assert.deepStrictEqual(agreeing.cloud, ok({ ...china, cloud: chinaCloud }).cloud)
    // A private authority in front of a public vault: an endpoint of no known cloud is not judged.
    ok({
      ...base,
      cloud: { ...publicCloud, authority_host: "https://login.example.internal", name: "AzurePublicCloud" },
    })
    const stack = ok({
      ...base,
      vault_url: "https://kv1.vault.local.azurestack.external",
      cloud: {
        name: "AzureStackHub",
        vault_dns_suffix: "vault.local.azurestack.external",
        authority_host: "https://login.local.azurestack.external",
        keyvault_resource: "https://vault.local.azurestack.external",
      },
    })
    assert.strictEqual(stack.cloud.name, "Custom")
    ok({
      ...base,
      vault_url: "https://127.0.0.1:8443",
      cloud: {
        name: "emulator",
        vault_dns_suffix: "127.0.0.1",
        authority_host: "https://127.0.0.1:8444",
        keyvault_resource: "https://vault.azure.net",
      },
    })
  })
})

describe("other fields", () => {
  it("a misspelt field or setting gets the nearest known one suggested; anything further gets none", () => {
    const fixOf = (input: Record<string, unknown>, field: string) =>
      problemsOf({ ...base, ...input }).find((p) => p.field === field)?.fix ?? ""
    assert.match(fixOf({ certifcate_name: "x" }, "certifcate_name"), /^did you mean certificate_name\? /)
    assert.match(
      fixOf({ credential_mode: "manged_identity" }, "credential_mode"),
      /^did you mean managed_identity\? use one of/,
    )
    assert.match(fixOf({ on_soft_deleted: "recovr" }, "on_soft_deleted"), /^did you mean recover\? /)
    assert.match(fixOf({ pfx_encoding: "legacyy" }, "pfx_encoding"), /^did you mean legacy\? /)
    assert.match(
      problemsOf({
        ...base,
        cloud: { vault_dns_sufix: "x", authority_host: "https://a", keyvault_resource: "https://b" },
      }).find((p) => p.field === "cloud.vault_dns_sufix")?.fix ?? "",
      /^did you mean vault_dns_suffix\? /,
    )
    assert.notMatch(fixOf({ owner: "x" }, "owner"), /did you mean/)
    assert.notMatch(fixOf({ credential_mode: "kerberos" }, "credential_mode"), /did you mean/)
    assert.notMatch(fixOf({ credential_mode: 42 }, "credential_mode"), /did you mean/)
  })

  it("certificate_name is 1-127 of [A-Za-z0-9-]", () => {
    ok({ ...base, certificate_name: "a" })
    ok({ ...base, certificate_name: "A-1".padEnd(127, "x") })
    for (const bad of ["", "a_b", "a.b", "x".repeat(128), "café"]) {
      assert.deepStrictEqual(fieldsOf({ ...base, certificate_name: bad }), ["certificate_name"], bad)
    }
  })

  it("tags: at most 12 operator tags (15 with kvdeploy's 3 reserved), keys and values up to 256, reserved keys refused", () => {
    const twelve = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, "v"]))
    assert.deepStrictEqual(ok({ ...base, tags: twelve }).tags, twelve)
    assert.match(problemsOf({ ...base, tags: { ...twelve, k12: "v" } })[0]?.message ?? "", /15/)
    // A key too long to be a tag key is named by its length (it may be pasted key material).
    assert.deepStrictEqual(fieldsOf({ ...base, tags: { ["k".repeat(257)]: "v" } }), [
      "tags.(a key of 257 characters, not shown)",
    ])
    assert.deepStrictEqual(fieldsOf({ ...base, tags: { k: "v".repeat(257) } }), ["tags.k"])
    // A key with a line break or PEM markers is no tag key (a pasted key would be sent as one); named by length.
    const pemKey = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----"
    // The same for a value: a pasted key is short enough to pass the length rule.
    assert.deepStrictEqual(fieldsOf({ ...base, tags: { k: pemKey } }), ["tags.k"])
    assert.deepStrictEqual(
      fieldsOf({ ...base, tags: { [pemKey]: "v", "a\nb": "v", "a\tb": "v", ok: "v" } }),
      [
        `tags.(a key of ${pemKey.length} characters, not shown)`,
        "tags.(a key of 3 characters, not shown)",
        "tags.(a key of 3 characters, not shown)",
      ],
    )
    // Any control character (a tab, NUL, DEL) is refused in a key or a value, not only line breaks.
    assert.deepStrictEqual(
      fieldsOf({ ...base, tags: { a: "x\ty", b: "x\u0000y", c: "x\u007fy", d: "x y-z" } }),
      ["tags.a", "tags.b", "tags.c"],
    )
    assert.match(problemsOf({ ...base, tags: { a: "x\ty" } })[0]?.message ?? "", /control characters/)
    for (const reserved of [
      "certctl-managed-by",
      "certctl-certificate-id",
      "certctl-rollback-of",
      "CERTCTL-MANAGED-BY",
    ]) {
      assert.match(problemsOf({ ...base, tags: { [reserved]: "x" } })[0]?.message ?? "", /reserved/)
    }
    assert.deepStrictEqual(fieldsOf({ ...base, tags: { n: 3 } }), ["tags.n"])
  })

  it("credential_mode defaults to default; managed_identity_client_id only with managed_identity", () => {
    assert.strictEqual(ok(base).credentialMode, "default")
    for (const mode of ["default", "managed_identity", "client_secret", "workload_identity"]) {
      assert.strictEqual(ok({ ...base, credential_mode: mode }).credentialMode, mode)
    }
    assert.deepStrictEqual(fieldsOf({ ...base, credential_mode: "password" }), ["credential_mode"])
    const id = "11111111-2222-3333-4444-555555555555"
    assert.strictEqual(
      ok({ ...base, credential_mode: "managed_identity", managed_identity_client_id: id })
        .managedIdentityClientId,
      id,
    )
    assert.match(
      problemsOf({ ...base, managed_identity_client_id: id })[0]?.message ?? "",
      /not managed_identity/,
    )
    assert.deepStrictEqual(
      fieldsOf({ ...base, credential_mode: "managed_identity", managed_identity_client_id: "x" }),
      ["managed_identity_client_id"],
    )
    // Another mode and no GUID: both in one problem (the GUID was said only once the mode was set).
    const both = problemsOf({
      ...base,
      credential_mode: "client_secret",
      managed_identity_client_id: "my-identity",
    })
    assert.strictEqual(
      both[0]?.message,
      "is set but credential_mode is not managed_identity, and it is not a client id (a GUID)",
    )
    assert.match(both[0]?.fix ?? "", /client id \(for example 00000000-0000-0000-0000-000000000000\)/)
    assert.strictEqual(
      problemsOf({ ...base, managed_identity_client_id: id })[0]?.message,
      "is set but credential_mode is not managed_identity",
    )
  })

  it("on_soft_deleted defaults to fail; pfx_encoding defaults to modern", () => {
    const c = ok(base)
    assert.strictEqual(c.onSoftDeleted, "fail")
    assert.strictEqual(c.pfxEncoding, "modern")
    assert.strictEqual(
      ok({ ...base, on_soft_deleted: "recover", pfx_encoding: "legacy" }).pfxEncoding,
      "legacy",
    )
    assert.deepStrictEqual(fieldsOf({ ...base, on_soft_deleted: "purge", pfx_encoding: "des" }), [
      "on_soft_deleted",
      "pfx_encoding",
    ])
  })

  it("secret-looking fields are refused without echoing their value; unknown fields are named", () => {
    const input = {
      ...base,
      client_secret: "hunter2-value",
      password: "pw-value",
      pfx_password: "pfx-value",
      api_token: "tok-value",
      private_key: "key-value",
      passwd: "x-value",
      pwd: "y-value",
      vault_uri: "typo",
    }
    const problems = problemsOf(input)
    assert.deepStrictEqual(problems.map((p) => p.field).sort(), [
      "api_token",
      "client_secret",
      "passwd",
      "password",
      "pfx_password",
      "private_key",
      "pwd",
      "vault_uri",
    ])
    const fixOf = (field: string) => problems.find((p) => p.field === field)?.fix ?? ""
    assert.match(fixOf("client_secret"), /AZURE_CLIENT_SECRET/)
    // Each fix names where that secret does go (a PFX password was told to use credential_mode).
    for (const f of ["password", "pfx_password", "passwd", "pwd"])
      assert.match(fixOf(f), /--pfx-password-env VAR/)
    assert.match(fixOf("private_key"), /--key FILE, or an agent deployment's source\.key/)
    // An API key or an account key is a credential, not a key file; a key's password is its passphrase.
    for (const [field, fix] of [
      ["api_key", /use credential_mode/],
      ["storage_account_key", /use credential_mode/],
      ["key_password", /--key-passphrase-env VAR/],
      ["azure_client_secret", /AZURE_CLIENT_SECRET/],
      ["tls_key", /--key FILE/],
    ] as const)
      assert.match(problemsOf({ ...base, [field]: "x" })[0]?.fix ?? "", fix, field)
    assert.match(fixOf("api_token"), /use credential_mode/)
    assert.match(problemsOf({ ...base, previous_key: "/etc/k.pem" })[0]?.fix ?? "", /--previous-key FILE/)
    assert.match(problemsOf({ ...base, key_passphrase: "x" })[0]?.fix ?? "", /--key-passphrase-env VAR/)
    assert.match(problems.find((p) => p.field === "vault_uri")?.message ?? "", /not a known field/)
    const text = JSON.stringify(problems)
    for (const v of ["hunter2-value", "pw-value", "pfx-value", "tok-value", "key-value"])
      assert.notInclude(text, v)
  })

  it("a pasted key as a field name that happens to hold a secret's word is refused by its length, never shown", () => {
    // A key's base64 holds "pwd" or "token" by chance about once in a hundred keys: its field name
    // must be withheld on the secret path as on the unknown-field path.
    const body = `MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtoken${"A".repeat(40)}`
    const pem = `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`
    for (const key of [pem, body]) {
      const problems = problemsOf({ ...base, [key]: 1, cloud: { [key]: 1 } })
      assert.deepStrictEqual(
        problems.map((p) => p.field).filter((f) => f.includes("a key of")),
        [
          `(a key of ${key.length} characters, not shown)`,
          `cloud.(a key of ${key.length} characters, not shown)`,
        ],
      )
      assert.notInclude(JSON.stringify(problems), body)
    }
  })

  it("an agent deployment's certificate_id and adopt in a target file: said where they go on the command line", () => {
    const problems = problemsOf({ ...base, certificate_id: "api-2026", adopt: true })
    assert.deepStrictEqual(
      problems.map((p) => [p.field, p.message]),
      [
        ["certificate_id", "is not a field of the target: it belongs to the deploy request"],
        ["adopt", "is not a field of the target: it belongs to the deploy request"],
      ],
    )
    assert.match(problems[0]?.fix ?? "", /--certificate-id ID/)
    assert.match(problems[1]?.fix ?? "", /kvdeploy deploy --adopt/)
  })

  it("a field named like an Object method (constructor, toString, __proto__) is an unknown field, not a crash", () => {
    for (const key of ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"]) {
      // As JSON.parse and the YAML reader make it: an own key, "__proto__" included.
      const input = JSON.parse(`{"vault_url":"${base.vault_url}","certificate_name":"api","${key}":"x"}`)
      const problems = problemsOf(input)
      assert.deepStrictEqual(
        problems.map((p) => [p.field, p.message]),
        [[key, "is not a known field"]],
        key,
      )
      assert.match(problems[0]?.fix ?? "", /remove it or fix its spelling/)
    }
  })

  it("a tag named __proto__ is refused, not dropped on the way to the check", () => {
    const input = JSON.parse(
      `{"vault_url":"${base.vault_url}","certificate_name":"api","tags":{"__proto__":"x","env":"prod"}}`,
    )
    const problems = problemsOf(input)
    assert.deepStrictEqual(
      problems.map((p) => [p.field, p.message]),
      [["tags.__proto__", "is a key JavaScript objects reserve; kvdeploy cannot carry it as a tag"]],
    )
  })

  it("collects every problem at once", () => {
    const problems = problemsOf({
      vault_url: "http://x.vault.azure.net/path",
      certificate_name: "bad name",
      tags: { "certctl-managed-by": "me" },
      credential_mode: "nope",
      client_secret: "s",
    })
    assert.deepStrictEqual([...new Set(problems.map((p) => p.field))].sort(), [
      "certificate_name",
      "client_secret",
      "credential_mode",
      "tags.certctl-managed-by",
      "vault_url",
    ])
    for (const p of problems) assert.isAbove(p.fix.length, 0)
    assert.deepStrictEqual(fieldsOf(null), ["(config)"])
    assert.deepStrictEqual(fieldsOf({}).sort(), ["certificate_name", "vault_url"])
  })

  it.effect("validateTargetConfig fails with the tagged ConfigInvalid", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(validateTargetConfig({ vault_url: 1 }))
      assert.strictEqual(error._tag, "ConfigInvalid")
      assert.match(error.message, /vault_url/)
      const config = yield* validateTargetConfig(base)
      assert.strictEqual(config.certificateName, "api-prod")
    }),
  )

  it("hostile input never throws and never passes unless it is a valid configuration (property)", () => {
    fc.assert(
      fc.property(
        fc.record({
          vault_url: fc.oneof(fc.string(), fc.webUrl()),
          certificate_name: fc.string(),
          tags: fc.dictionary(fc.string(), fc.string()),
        }),
        (input) => {
          const r = validateTargetConfigSync(input)
          if (Result.isSuccess(r)) {
            assert.match(
              r.success.vaultUrl,
              /^https:\/\/[a-z][a-z0-9-]{1,22}[a-z0-9]\.vault\.(azure\.net|usgovcloudapi\.net|azure\.cn)$/,
            )
            assert.match(r.success.certificateName, /^[A-Za-z0-9-]{1,127}$/)
          } else {
            assert.isAbove(r.failure.problems.length, 0)
          }
        },
      ),
      { numRuns: 2000 },
    )
  })
})

// Refusals an operator acts on: a secret is called a secret (not a typo), the problem names the
// field to change, and the limits' own values are accepted.
describe("secrets in configuration", () => {
  it("every secret-looking field is refused as a secret, not as an unknown field", () => {
    for (const key of [
      "client_secret",
      "password",
      "pfx_password",
      "passwd",
      "pwd",
      "api_token",
      "access_token",
      "private_key",
      "pfx_passphrase",
      "private_key_pem",
      "connection_string",
      "storage_sas_url",
    ]) {
      const problems = problemsOf({ ...base, [key]: "value-0123" })
      assert.deepStrictEqual(
        problems.map((p) => p.field),
        [key],
        key,
      )
      assert.match(problems[0]?.message ?? "", /looks like a secret/, key)
      assert.match(problems[0]?.fix ?? "", /^remove it/, key)
      assert.notInclude(JSON.stringify(problems), "value-0123")
    }
  })

  it("a tag value holding a secret the process holds is refused without being shown; a library caller's validation knows none", () => {
    const secret = "Zx8Q~abcdefghijklmnop.42"
    const knownSecrets = [{ value: secret, label: "the value of AZURE_CLIENT_SECRET" }]
    const tags = { note: secret, wrapped: `id=${encodeURIComponent(secret)};`, env: "prod" }
    const r = validateTargetConfigSync({ ...base, tags }, { knownSecrets })
    const problems = Result.isFailure(r) ? r.failure.problems : []
    assert.deepStrictEqual(
      problems.map((p) => [p.field, p.message]),
      ["note", "wrapped"].map((key) => [
        `tags.${key}`,
        "tag value holds the value of AZURE_CLIENT_SECRET (not shown); tags are shown to every reader of the vault's certificate metadata",
      ]),
    )
    assert.match(problems[0]?.fix ?? "", /^keep secrets out of tags/)
    assert.notInclude(JSON.stringify(Result.isFailure(r) ? r.failure : r), "abcdefghijklmnop")
    assert.deepStrictEqual(ok({ ...base, tags }).tags, tags)
  })

  it("a secret-looking field inside cloud is refused as a secret too", () => {
    const cloud = {
      vault_dns_suffix: "vault.local.azurestack.external",
      authority_host: "https://login.local.azurestack.external",
      keyvault_resource: "https://vault.local.azurestack.external",
    }
    for (const key of ["client_secret", "password", "token"]) {
      const problems = problemsOf({
        ...base,
        vault_url: "https://kv1.vault.local.azurestack.external",
        cloud: { ...cloud, [key]: "value-0123" },
      })
      assert.deepStrictEqual(
        problems.map((p) => [p.field, p.message]),
        [[`cloud.${key}`, "looks like a secret; secrets are never read from configuration"]],
      )
      assert.notInclude(JSON.stringify(problems), "value-0123")
    }
  })
})

describe("managed_identity_client_id", () => {
  it("with any credential_mode but managed_identity: refused, naming managed_identity_client_id", () => {
    const id = "11111111-2222-3333-4444-555555555555"
    for (const mode of [undefined, "default", "client_secret", "workload_identity"]) {
      const problems = problemsOf({
        ...base,
        ...(mode === undefined ? {} : { credential_mode: mode }),
        managed_identity_client_id: id,
      })
      assert.deepStrictEqual(
        problems.map((p) => p.field),
        ["managed_identity_client_id"],
        String(mode),
      )
      assert.match(problems[0]?.message ?? "", /not managed_identity/)
      assert.match(problems[0]?.fix ?? "", /credential_mode: managed_identity/)
    }
  })
})

describe("tag limits", () => {
  it("a tag key and a tag value of exactly 256 characters are accepted; 257 is refused", () => {
    const key = "k".repeat(256)
    const value = "v".repeat(256)
    assert.deepStrictEqual(ok({ ...base, tags: { [key]: value } }).tags, { [key]: value })
    assert.deepStrictEqual(
      problemsOf({ ...base, tags: { [`${key}k`]: value, k: `${value}v` } }).map((p) => p.message),
      ["tag key is 257 characters long", "tag value is 257 characters long"],
    )
  })
})

/**
 * Limits and rules whose problems name the limit: a mutation run (Stryker) showed that the suite
 * passed with each of these checks removed or its message swapped for another's.
 */
describe("limits named in their problems", () => {
  it("certificate_name: 127 characters fit; 128 are refused for their length, not their characters", () => {
    assert.strictEqual(ok({ ...base, certificate_name: "a".repeat(127) }).certificateName, "a".repeat(127))
    assert.deepStrictEqual(
      problemsOf({ ...base, certificate_name: "a".repeat(128) }).map((p) => [p.field, p.message, p.fix]),
      [
        [
          "certificate_name",
          "is 128 characters long; Key Vault allows at most 127",
          "use 1-127 characters of A-Z, a-z, 0-9 and '-'",
        ],
      ],
    )
  })

  it("vault_url: http, or another scheme than https, is refused, naming the scheme", () => {
    const said = (url: string) =>
      problemsOf({ ...base, vault_url: url }).map((p) => [p.field, p.message, p.fix])
    assert.deepStrictEqual(said("http://my-vault.vault.azure.net"), [
      ["vault_url", "uses http; Key Vault is served over https only", "use https://"],
    ])
    assert.deepStrictEqual(said("ftp://my-vault.vault.azure.net"), [
      ["vault_url", 'uses the scheme "ftp"', "use https://"],
    ])
  })

  it("a certificate id of 1-256 characters fits; an empty one or a longer one is refused for its length", () => {
    assert.deepStrictEqual(certificateIdProblems("c", "certificateId"), [])
    assert.deepStrictEqual(certificateIdProblems("c".repeat(256), "certificateId"), [])
    for (const id of ["", "c".repeat(257)])
      assert.deepStrictEqual(
        certificateIdProblems(id, "certificateId").map((p) => [p.field, p.message, p.fix]),
        [
          [
            "certificateId",
            `is ${id.length} characters long; it becomes the certctl-certificate-id tag value`,
            "use an id of 1-256 characters",
          ],
        ],
      )
  })

  it("a certificate id with spaces around it is refused as a tag value with them is, without showing it", () => {
    for (const id of [" api-2026", "api-2026 ", "  api 2026  "]) {
      const problems = certificateIdProblems(id, "--certificate-id")
      assert.deepStrictEqual(
        problems.map((p) => [p.field, p.fix]),
        [["--certificate-id", "write it without them"]],
        JSON.stringify(id),
      )
      assert.match(problems[0]?.message ?? "", /spaces at its start or end/)
      assert.notInclude(problems[0]?.message ?? "", "api")
    }
    assert.deepStrictEqual(
      certificateIdProblems("   ", "certificate_id").map((p) => p.message),
      ["is only spaces; it becomes the certctl-certificate-id tag value"],
    )
    // Spaces inside are part of an id.
    assert.deepStrictEqual(certificateIdProblems("api 2026", "certificateId"), [])
  })

  it("a custom cloud's authority_host or keyvault_resource with a query, fragment or credentials is refused", () => {
    const cloud = {
      vault_dns_suffix: "vault.local.azurestack.external",
      authority_host: "https://login.local.azurestack.external",
      keyvault_resource: "https://vault.local.azurestack.external",
    }
    const stack = { ...base, vault_url: "https://kv1.vault.local.azurestack.external" }
    for (const [field, value] of [
      ["authority_host", "https://user:pw@login.local.azurestack.external"],
      ["authority_host", "https://login.local.azurestack.external/?tenant=x"],
      ["keyvault_resource", "https://vault.local.azurestack.external/#frag"],
    ] as const)
      assert.deepStrictEqual(
        problemsOf({ ...stack, cloud: { ...cloud, [field]: value } }).map((p) => [p.field, p.message, p.fix]),
        [[`cloud.${field}`, "has a query, fragment or credentials", "use scheme, host and port only"]],
        value,
      )
  })
})

describe("rules a mutation run found unchecked", () => {
  it("vault_url and certificate_name: a missing one 'is missing', one of another type 'is not a string'", () => {
    const { vault_url: _url, ...noUrl } = base
    const { certificate_name: _name, ...noName } = base
    assert.strictEqual(problemsOf(noUrl).find((p) => p.field === "vault_url")?.message, "is missing")
    assert.strictEqual(
      problemsOf({ ...base, vault_url: 443 }).find((p) => p.field === "vault_url")?.message,
      "is not a string",
    )
    assert.strictEqual(problemsOf(noName).find((p) => p.field === "certificate_name")?.message, "is missing")
    assert.strictEqual(
      problemsOf({ ...base, certificate_name: ["api"] }).find((p) => p.field === "certificate_name")?.message,
      "is not a string",
    )
  })

  it("a field with 'key' inside its name (not last) is an unknown field, not refused as a secret", () => {
    const problems = problemsOf({ ...base, keyvault_name: "my-vault" })
    assert.deepStrictEqual(
      problems.map((p) => p.field),
      ["keyvault_name"],
    )
    assert.strictEqual(problems[0]?.message, "is not a known field")
    assert.notMatch(problems[0]?.message ?? "", /secret/)
    // Last, it names a key: refused as one.
    assert.match(problemsOf({ ...base, ssh_key: "x" })[0]?.message ?? "", /secret/)
  })

  it("managed_identity_client_id: a GUID in upper case is taken in lower case; text around a GUID is refused", () => {
    const id = "AAAAAAAA-2222-3333-4444-BBBBBBBBBBBB"
    assert.strictEqual(
      ok({ ...base, credential_mode: "managed_identity", managed_identity_client_id: id })
        .managedIdentityClientId,
      id.toLowerCase(),
    )
    for (const wrapped of [`x${id}`, `${id}x`, ` ${id}`])
      assert.deepStrictEqual(
        fieldsOf({ ...base, credential_mode: "managed_identity", managed_identity_client_id: wrapped }),
        ["managed_identity_client_id"],
        wrapped,
      )
  })

  it("a host that only starts like a loopback address is no loopback vault: a custom cloud's suffix still applies", () => {
    const cloud = {
      vault_dns_suffix: "vault.emulator",
      authority_host: "https://127.0.0.1:8444",
      keyvault_resource: "https://vault.emulator",
    }
    assert.strictEqual(
      ok({ ...base, vault_url: "https://127.0.0.1:8443", cloud }).vaultUrl,
      "https://127.0.0.1:8443",
    )
    for (const host of ["127.0.0.1.nip.io", "127.0.0.1.vault.example"]) {
      const problems = problemsOf({ ...base, vault_url: `https://${host}:8443`, cloud })
      assert.deepStrictEqual(
        problems.map((p) => p.field),
        ["vault_url"],
        host,
      )
      assert.match(problems[0]?.message ?? "", /vault_dns_suffix|not a vault/, host)
    }
  })
})
