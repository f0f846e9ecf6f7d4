/** `kvdeploy list`: the certificates in a vault, managed by kvdeploy or not, with expiry. */

import { isManagedByKvdeploy, type UnusableListEntry, VaultMalformedAnswer } from "@kvdeploy/core"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { parseDuration } from "../cli/duration.js"
import * as flags from "../cli/flags.js"
import { ExitCode, ExitWith, type Problem, wholeNumberFlag } from "../cli/problems.js"
import { resolveTargetAfterFlags } from "../cli/target.js"
import { printJson, printLines, progress, styleOut } from "../cli/terminal.js"
import { credentialInUse, useVault, vaultProblem } from "../cli/vault.js"
import { expiryText } from "../cli/versions.js"

export interface ListedCertificate {
  readonly name: string
  readonly managedByKvdeploy: boolean
  readonly enabled: boolean
  readonly expiresAt: string | undefined
  readonly x5t: string | undefined
  readonly updatedAt: string | undefined
}

/**
 * The pages `list` reads unless told otherwise (`--max-pages`): 100,000 certificates at Key Vault's 25
 * a page. A vault rarely holds a tenth of that; a list that goes on past it may be a proxy's or a
 * faulty service's whose next links never end, and would otherwise be followed for good.
 */
export const DEFAULT_LIST_MAX_PAGES = 4_000
const MOST_LIST_PAGES = 1_000_000

export const list = Command.make(
  "list",
  {
    ...flags.target,
    expiringWithin: Flag.String("expiring-within").pipe(
      Flag.withMetavar("DURATION"),
      Flag.withDescription(
        "Only certificates that expire within this time (e.g. 30d, 12h, 2w), expired ones included.",
      ),
      Flag.optional,
    ),
    managedOnly: Flag.Boolean("managed").pipe(
      Flag.withDescription("Only certificates kvdeploy manages (certctl-managed-by=certctl)."),
      Flag.withDefault(false),
    ),
    maxPages: Flag.String("max-pages").pipe(
      Flag.withMetavar("N"),
      Flag.withDescription(
        `Read at most N pages of the list, one request each, of up to 25 certificates (default ${DEFAULT_LIST_MAX_PAGES}). A list that goes on past them is printed as far as it was read, marked incomplete, and the command exits 1.`,
      ),
      Flag.optional,
    ),
    json: flags.json,
  },
  (input) =>
    Effect.gen(function* () {
      // Every problem of the input in one usage error: these flags' and the target's.
      const problems: Array<Problem> = []
      let withinMs: number | undefined
      if (Option.isSome(input.expiringWithin)) {
        withinMs = parseDuration(input.expiringWithin.value)
        if (withinMs === undefined)
          problems.push({
            field: "--expiring-within",
            message: `${JSON.stringify(input.expiringWithin.value)} is not a duration`,
            fix: "write a number and a unit: 30d, 12h, 2w",
          })
      }
      let maxPages = DEFAULT_LIST_MAX_PAGES
      if (Option.isSome(input.maxPages)) {
        const n = wholeNumberFlag(
          "--max-pages",
          input.maxPages.value,
          { min: 1, max: MOST_LIST_PAGES },
          `a number of pages from 1 to ${MOST_LIST_PAGES}`,
          `write a whole number such as ${DEFAULT_LIST_MAX_PAGES} (each page holds up to 25 certificates)`,
        )
        if (typeof n === "number") maxPages = n
        else problems.push(n)
      }
      const { config } = yield* resolveTargetAfterFlags(problems, input, {}, { requireName: false })
      const credential = yield* credentialInUse(config)
      /** What an entry the vault answered without its facts is, in an operator's words. */
      const unusableText = (u: UnusableListEntry) =>
        `the vault's list entry for ${u.name} cannot be used (${u.detail.replace(/^it /, "")}; Key Vault sends it, so a proxy or service between this machine and the vault may have changed the answer): \`kvdeploy show --name ${u.name}\` reads the certificate itself`
      // Through the vault adapter, as every other command: its error mapping, timeouts, proxy, CAs and
      // the request log kept free of its connections. One request per page of 25.
      const {
        out: all,
        unusable,
        pages,
        incomplete,
      } = yield* useVault(config, (vault) =>
        Effect.gen(function* () {
          const listPage = vault.listCertificates
          if (listPage === undefined)
            return yield* Effect.die(new Error("the vault adapter does not list certificates"))
          const out: Array<ListedCertificate> = []
          const unusable: Array<UnusableListEntry> = []
          // Key Vault's next-page links chain to an end; one that leads back to a page already read (a
          // proxy's, a faulty service's) would be followed for good.
          const followed = new Set<string>()
          let continuation: string | undefined
          let pages = 0
          do {
            // A list whose links are each new, but never end, is stopped by the page cap.
            if (pages >= maxPages) return { out, unusable, pages, incomplete: true }
            if (continuation !== undefined) {
              if (followed.has(continuation))
                return yield* new VaultMalformedAnswer({
                  operation: "listCertificates",
                  detail: `its next-page link leads back to a page already read, after ${out.length} certificates: a proxy or service between this machine and the vault may have changed the answer`,
                })
              followed.add(continuation)
            }
            yield* progress(
              `listing certificates in ${config.vaultUrl}…${out.length === 0 ? "" : ` ${out.length} so far`}`,
            )
            const page = yield* listPage(continuation)
            pages++
            unusable.push(...(page.unusable ?? []))
            for (const c of page.certificates)
              out.push({
                name: c.name,
                managedByKvdeploy: isManagedByKvdeploy(c.tags),
                enabled: c.enabled,
                expiresAt: c.expiresAt?.toISOString(),
                x5t: c.x5t === "" ? undefined : c.x5t,
                updatedAt: c.updatedAt?.toISOString(),
              })
            continuation = page.continuation
          } while (continuation !== undefined)
          return { out, unusable, pages, incomplete: false }
        }).pipe(Effect.mapError((e) => vaultProblem("listCertificates", e, credential))),
      )
      const now = Date.now()
      const selected = all
        .filter((c) => !input.managedOnly || c.managedByKvdeploy)
        .filter(
          (c) =>
            withinMs === undefined ||
            (c.expiresAt !== undefined && Date.parse(c.expiresAt) - now <= withinMs),
        )
        .sort((a, b) => a.name.localeCompare(b.name))
      // Printed as far as it was read (nothing read is lost), said to be incomplete, and exit 1.
      const incompleteText = incomplete
        ? `the list did not end after ${pages} ${pages === 1 ? "page" : "pages"} (${all.length} certificates read): the vault holds more than that, or a proxy or service between this machine and the vault keeps answering next-page links; \`--max-pages ${Math.min(MOST_LIST_PAGES, pages * 2)}\` reads further`
        : undefined
      const end = incomplete ? new ExitWith({ exitCode: ExitCode.failed }) : Effect.void
      if (input.json) {
        yield* printJson({
          vaultUrl: config.vaultUrl,
          complete: !incomplete,
          total: all.length,
          matched: selected.length,
          // The window `matched` counts within, as the text's "expiring within 30d" states it: the
          // flag's words and the milliseconds they mean (expired certificates match it too).
          ...(withinMs === undefined
            ? {}
            : {
                expiringWithin: {
                  given: Option.getOrElse(input.expiringWithin, () => ""),
                  ms: withinMs,
                },
              }),
          certificates: selected,
          ...(unusable.length === 0
            ? {}
            : { unusable: unusable.map((u) => ({ name: u.name, problem: unusableText(u) })) }),
          ...(incompleteText === undefined ? {} : { incomplete: { pages, problem: incompleteText } }),
        })
        return yield* end
      }
      const s = styleOut()
      const width = Math.max(4, ...selected.map((c) => c.name.length))
      yield* printLines([
        `${s.bold(config.vaultUrl)}: ${selected.length} of ${incomplete ? "at least " : ""}${all.length} certificate${all.length === 1 ? "" : "s"}${withinMs === undefined ? "" : ` expiring within ${Option.getOrElse(input.expiringWithin, () => "")}`}`,
        ...selected.map((c) => {
          const exp = expiryText(c.expiresAt, now)
          const soon = c.expiresAt !== undefined && Date.parse(c.expiresAt) - now < 30 * 86_400_000
          return `  ${c.name.padEnd(width)}  ${c.managedByKvdeploy ? s.cyan("kvdeploy    ") : s.yellow("not kvdeploy")}  ${soon ? s.red(exp) : exp}${c.enabled ? "" : s.red("  disabled")}`
        }),
        ...unusable.map((u) => `  ${s.yellow("warning:")} ${unusableText(u)}`),
        ...(incompleteText === undefined ? [] : [`  ${s.red("incomplete:")} ${incompleteText}`]),
      ])
      return yield* end
    }),
).pipe(
  Command.withDescription(
    "List the certificates in a vault, whether kvdeploy manages them (certctl-managed-by=certctl) or not, with expiry. --expiring-within 30d keeps those expiring within 30 days (and expired ones). Needs certificates/list. Exit 0, 1 when the vault cannot be read or its list did not end within --max-pages, 2 for a usage error.",
  ),
  Command.withShortDescription("Certificates in a vault, with expiry"),
  Command.withExamples([
    {
      command: "kvdeploy list --vault-url https://my-vault.vault.azure.net",
      description: "Everything in the vault",
    },
    {
      command: "kvdeploy list --config target.json --expiring-within 30d --json",
      description: "What expires in the next 30 days, as JSON",
    },
  ]),
)
