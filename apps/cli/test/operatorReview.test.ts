/**
 * An operator's slips that an earlier run did not catch: each gets every problem of its input in
 * one run, naming the field and the fix. Parse-level runs of the built kvdeploy: no vault is
 * contacted (none is given, or the input is refused before one would be).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { subcommandFlags } from "../src/main.js"
import { type ErrorDocument, json, runCli } from "./harness.js"

/** Each test's files in a directory of its own under this one, removed after the file's tests. */
const root = mkdtempSync(join(tmpdir(), "kvdeploy-operator-review-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const fieldsOf = (doc: ErrorDocument) => doc.error.problems.map((p) => p.field)

describe("a command's own flags and the target, in one run", () => {
  it("list names a bad --expiring-within, a bad --max-pages and a missing --vault-url together", async () => {
    const r = await runCli(["list", "--expiring-within", "30x", "--max-pages", "0", "--json"])
    expect(r.code).toBe(2)
    const doc = json<ErrorDocument>(r)
    expect(doc.error.exitCode).toBe(2)
    expect(fieldsOf(doc)).toEqual(["--expiring-within", "--max-pages", "--vault-url"])
    expect(r.stderr).toContain("--vault-url: is missing")
    expect(r.stderr).toContain('--expiring-within: "30x" is not a duration')
  })

  it("versions names a bad --limit and the target's problems together", async () => {
    const r = await runCli(["versions", "--limit", "x", "--name", "api_prod", "--json"])
    expect(r.code).toBe(2)
    const doc = json<ErrorDocument>(r)
    expect(fieldsOf(doc)).toEqual(["--limit", "--vault-url", "--name"])
    expect(doc.error.problems.find((p) => p.field === "--name")?.message).toContain(
      "only letters, digits and hyphens",
    )
  })

  it("a flag's problem alone is still its own title", async () => {
    const r = await runCli([
      "versions",
      "--limit",
      "0",
      "--vault-url",
      "https://my-vault.vault.azure.net",
      "--name",
      "api",
      "--json",
    ])
    expect(r.code).toBe(2)
    const doc = json<ErrorDocument>(r)
    expect(fieldsOf(doc)).toEqual(["--limit"])
    expect(doc.error.title).toBe('--limit: "0" is not a number of versions to show (1 or more)')
  })
})

describe("a flag given twice", () => {
  it("says to give it once, in the text and in the --json document", async () => {
    const r = await runCli([
      "plan",
      "--vault-url",
      "https://my-vault.vault.azure.net",
      "--name",
      "api",
      "--cert",
      "leaf.pem",
      "--cert",
      "other.pem",
      "--json",
    ])
    expect(r.code).toBe(2)
    const doc = json<ErrorDocument>(r)
    expect(doc.error.problems).toEqual([
      expect.objectContaining({ field: "--cert", fix: "give --cert once" }),
    ])
    expect(r.stderr).toContain("fix: give --cert once")
  })

  it("--chain twice: once, with the chain's certificates in one file", async () => {
    const r = await runCli(["deploy", "--chain", "a.pem", "--chain", "b.pem", "--json"])
    expect(r.code).toBe(2)
    expect(json<ErrorDocument>(r).error.problems[0]?.fix).toBe(
      "give --chain once, with the chain's certificates in one file",
    )
  })
})

describe("an empty target file", () => {
  it("is said to be empty, by validate and by a command's --config, with what to write", async () => {
    const dir = mkdtempSync(join(root, "case-"))
    const empty = join(dir, "target.json")
    writeFileSync(empty, "\n")
    const validated = await runCli(["validate", empty, "--json"])
    expect(validated.code).toBe(2)
    const report = json<{ valid: boolean; problems: ReadonlyArray<{ message: string; fix: string }> }>(
      validated,
    )
    expect(report.valid).toBe(false)
    expect(report.problems[0]?.message).toBe(`${empty} is empty`)
    expect(report.problems[0]?.fix).toContain('"vault_url"')
    const shown = await runCli(["show", "--config", empty, "--json"])
    expect(shown.code).toBe(2)
    expect(json<ErrorDocument>(shown).error.problems).toEqual([
      expect.objectContaining({ field: "--config", message: `${empty} is empty` }),
    ])
    expect(shown.stderr).not.toContain("Unexpected end of JSON input")
  })
})

describe("deploy --metrics-file that cannot be written", () => {
  const deployWith = (metricsFile: string) => [
    "deploy",
    "--vault-url",
    "https://my-vault.vault.azure.net",
    "--name",
    "api",
    "--cert",
    "-",
    "--metrics-file",
    metricsFile,
    "--json",
  ]
  const metricsProblem = async (metricsFile: string) => {
    const r = await runCli(deployWith(metricsFile))
    expect(r.code).toBe(2)
    return json<ErrorDocument>(r).error.problems.find((p) => p.field === "--metrics-file")
  }

  it("names a directory that does not exist, in words, with the fix", async () => {
    const dir = mkdtempSync(join(root, "case-"))
    const problem = await metricsProblem(join(dir, "textfile", "kvdeploy-api.prom"))
    expect(problem?.message).toBe(
      `${join(dir, "textfile", "kvdeploy-api.prom")}: its directory ${join(dir, "textfile")} does not exist`,
    )
    expect(problem?.fix).toContain("create it (mkdir -p)")
    expect(problem?.message).not.toContain("ENOENT")
  })

  it("an empty value is said to be empty", async () => {
    const problem = await metricsProblem("")
    expect(problem?.message).toBe("is empty")
  })
})

describe("emulator --vault given a URL or a name with other characters", () => {
  it.each([
    ["https://my-vault.vault.azure.net", " (it is a URL or host name, not a vault's name)"],
    ["bad name!", ""],
    ["my/vault", ""],
  ])("%s: the name is refused as a name, not as a URL", async (vault, more) => {
    // Refused before it starts; were it to start, the kill at the time limit fails the test.
    const r = await runCli(["emulator", "--vault", vault, "--json"], { timeoutMs: 20_000 })
    expect(r.code).toBe(2)
    const [problem, ...others] = json<ErrorDocument>(r).error.problems
    expect(others).toEqual([])
    expect(problem?.field).toBe("--vault")
    expect(problem?.message).toBe(
      `vault name ${JSON.stringify(vault)} is invalid: it may contain only letters, digits and hyphens${more}`,
    )
    expect(problem?.fix).toContain(
      "give the vault's name alone (my-vault for https://my-vault.vault.azure.net)",
    )
  })
})

describe("a material flag given a directory or an empty file", () => {
  it("names the file to give in its place, not 'check the path' or 'check the file'", async () => {
    const dir = mkdtempSync(join(root, "case-"))
    const live = join(dir, "live", "www.example.com")
    mkdirSync(live, { recursive: true })
    const emptyKey = join(dir, "privkey.pem")
    writeFileSync(emptyKey, "")
    const r = await runCli([
      "deploy",
      "--vault-url",
      "https://my-vault.vault.azure.net",
      "--name",
      "api",
      "--cert",
      live,
      "--key",
      emptyKey,
      "--json",
    ])
    expect(r.code).toBe(2)
    const problems = json<ErrorDocument>(r).error.problems
    expect(problems.find((p) => p.field === "--cert")).toEqual({
      field: "--cert",
      message: `${live}: is a directory`,
      fix: `give the certificate file in it, not the directory (certbot's live directory: --cert ${join(live, "fullchain.pem")} --key ${join(live, "privkey.pem")})`,
    })
    const key = problems.find((p) => p.field === "--key")
    expect(key?.message).toBe(`${emptyKey} is empty`)
    expect(key?.fix).toContain("give the file that holds the private key")
  })
})

describe("a target file with a key given twice", () => {
  it("names the key, where a one-line file's line alone would not find it", async () => {
    const dir = mkdtempSync(join(root, "case-"))
    const file = join(dir, "target.json")
    // As `jq -c` writes it: one line.
    writeFileSync(
      file,
      '{"vault_url":"https://kv-prod.vault.azure.net","certificate_name":"www","tags":{"env":"a"},"certificate_name":"api"}\n',
    )
    const r = await runCli(["validate", file, "--json"])
    expect(r.code).toBe(2)
    const report = json<{ problems: ReadonlyArray<{ message: string; fix: string }> }>(r)
    expect(report.problems.map((p) => p.message)).toEqual([
      `${file}: the key "certificate_name" is given twice (line 1, column 93)`,
    ])
  })
})

describe("tags with spaces at their start or end", () => {
  it("the fix names --tag's form for a --tag flag only, not for a tag of the target file", async () => {
    const dir = mkdtempSync(join(root, "case-"))
    const file = join(dir, "target.json")
    writeFileSync(
      file,
      '{"vault_url":"https://kv-prod.vault.azure.net","certificate_name":"www","tags":{"env ":"prod"}}\n',
    )
    const r = await runCli(["plan", "--config", file, "--tag", "owner =payments", "--cert", "-", "--json"])
    expect(r.code).toBe(2)
    expect(json<ErrorDocument>(r).error.problems).toEqual([
      {
        field: `${file}: tags.env `,
        message: 'tag key "env " has spaces at its start or end, which would be part of the key as sent',
        fix: 'write it without them: "env"',
      },
      {
        field: "--tag owner ",
        message: 'tag key "owner " has spaces at its start or end, which would be part of the key as sent',
        fix: 'write it without them: "owner" (with --tag, no spaces around =)',
      },
    ])
  })
})

describe("a command's flags without a command", () => {
  it("`kvdeploy --config target.json`: says the command is missing, not that target.json is an unknown command", async () => {
    const r = await runCli(["--config", "target.json", "--json"])
    expect(r.code).toBe(2)
    const doc = json<ErrorDocument>(r)
    expect(fieldsOf(doc)).toEqual(["--config", "--json"])
    expect(doc.error.problems[0]).toEqual({
      field: "--config",
      message: "--config is given without a command: kvdeploy's flags go after a command's name",
      fix: "name the command first: kvdeploy COMMAND --config target.json (`kvdeploy --help` lists the commands)",
    })
    expect(r.stderr).not.toContain("Unknown subcommand")
  })

  it("a mistyped command is still named as one", async () => {
    const r = await runCli(["deplyo", "--json"])
    expect(r.code).toBe(2)
    expect(json<ErrorDocument>(r).error.title).toBe('Unknown subcommand "deplyo" for "kvdeploy"')
  })

  it("a value near a command's name (`kvdeploy --name shop`) stays the flag's value in the fix", async () => {
    const r = await runCli(["--name", "shop", "--json"])
    expect(r.code).toBe(2)
    const doc = json<ErrorDocument>(r)
    expect(fieldsOf(doc)).toEqual(["--name", "--json"])
    expect(doc.error.problems[0]?.fix).toBe(
      "name the command first: kvdeploy COMMAND --name shop (`kvdeploy --help` lists the commands)",
    )
    expect(r.stderr).not.toContain("Unknown subcommand")
  })

  it("a flag whose value is missing before a command's name (`kvdeploy --name deploy`): the fix gives it a placeholder", async () => {
    const r = await runCli(["--name", "deploy", "--json"])
    expect(r.code).toBe(2)
    const doc = json<ErrorDocument>(r)
    expect(doc.error.problems[0]).toEqual({
      field: "--name",
      message: '--name is given before the command name "deploy": a command\'s flags go after its name',
      fix: "put it after the command: kvdeploy deploy --name VALUE",
    })
  })

  it("an empty inline value (`kvdeploy --config= show`) gets the placeholder too", async () => {
    const r = await runCli(["--config=", "show", "--json"])
    expect(r.code).toBe(2)
    expect(json<ErrorDocument>(r).error.problems[0]?.fix).toBe(
      "put it after the command: kvdeploy show --config VALUE",
    )
  })

  it("the flags taken as taking no value (from the parser's spec) are those the help pages show without one", () => {
    const pages = JSON.parse(readFileSync(join(import.meta.dirname, "../dist/help.json"), "utf8")) as Record<
      string,
      { readonly plain: string }
    >
    const shown = new Set<string>()
    for (const { plain } of Object.values(pages)) {
      const flags = plain.split("\nFLAGS\n")[1]?.split("\nGLOBAL FLAGS")[0] ?? ""
      for (const line of flags.split("\n")) {
        const flag = /^ {2}(--[a-z][a-z-]*)( \S+)?\s{2,}/.exec(line)
        if (flag?.[1] !== undefined && flag[2] === undefined) shown.add(flag[1])
      }
    }
    const switches = new Set(
      [...subcommandFlags().values()].flatMap((flags) =>
        [...flags].flatMap(([flag, { takesValue }]) => (takesValue || !flag.startsWith("--") ? [] : [flag])),
      ),
    )
    expect(shown.size).toBeGreaterThan(0)
    expect([...shown].sort()).toEqual([...switches].sort())
  })

  it("a mistyped command after a flag (`kvdeploy --json deplyo`) is named as one, not read as the flag's value", async () => {
    const r = await runCli(["--json", "deplyo"])
    expect(r.code).toBe(2)
    const doc = json<ErrorDocument>(r)
    expect(doc.error.problems).toEqual([
      {
        field: "--json",
        message: "--json is given without a command: kvdeploy's flags go after a command's name",
        fix: "name the command first: kvdeploy COMMAND --json (`kvdeploy --help` lists the commands)",
      },
      {
        field: "(command)",
        message: 'Unknown subcommand "deplyo" for "kvdeploy"',
        fix: "did you mean deploy? see `kvdeploy --help` for the flags and examples",
      },
    ])
  })
})

describe("a credential variable set to nothing", () => {
  it("is said to be empty, not 'not set' (env shows it set)", async () => {
    const r = await runCli(
      [
        "show",
        "--vault-url",
        "https://my-vault.vault.azure.net",
        "--name",
        "api",
        "--credential-mode",
        "client_secret",
        "--json",
      ],
      {
        env: {
          AZURE_TENANT_ID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
          AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001",
          AZURE_CLIENT_SECRET: "",
        },
      },
    )
    expect(r.code).toBe(2)
    const problems = json<ErrorDocument>(r).error.problems
    expect(problems.map((p) => [p.field, p.message])).toEqual([
      ["AZURE_CLIENT_SECRET", "is set but empty (credential_mode client_secret needs its value)"],
    ])
  })
})
