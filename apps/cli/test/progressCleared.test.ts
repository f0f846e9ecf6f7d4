/**
 * On a terminal, the progress line ("reading api-example…") is cleared before the answer is
 * printed: each command's first line of output starts at the left edge, not after the progress
 * text. Runs the built binary under `script` (a pseudo-terminal); skipped where `script` is not
 * installed. (show and versions left "reading …" in front of their first line.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Fixtures, makeFixtures } from "./fixtures.js"
import { runCli, startWorld, type World } from "./harness.js"
import { onTerminal, requireScript, scriptSkipped } from "./pty.js"

let world: World
let fx: Fixtures
let cert = ""
const name = "tty-cleared"

beforeAll(async () => {
  if (scriptSkipped) return
  requireScript()
  ;[world, fx] = await Promise.all([startWorld("kvdeploy-tty-cleared"), makeFixtures()])
  cert = world.file(`${name}.pem`, fx.bundle(await fx.leaf()))
  const deployed = await runCli(["deploy", "--config", world.targetFile(name), "--cert", cert], {
    env: world.env,
  })
  expect(deployed.code, deployed.stderr).toBe(0)
})
afterAll(async () => {
  await world?.stop()
})

/** A progress note as the CLI draws it: to the line's start, the line erased, the text dim. */
const esc = "\u001b"
const progressNote = new RegExp(`\r${esc}\\[2K${esc}\\[2m([^${esc}]*?…[^${esc}]*)${esc}\\[22m`, "g")

/** What follows each progress note on the screen, up to 40 characters, with the note's text. */
const afterEachNote = (screen: string) =>
  [...screen.matchAll(progressNote)].map((m) => ({
    note: m[1],
    next: screen.slice((m.index ?? 0) + m[0].length, (m.index ?? 0) + m[0].length + 40),
  }))

describe.skipIf(scriptSkipped)("the progress line on a terminal", () => {
  for (const command of ["show", "versions", "list", "doctor", "plan", "verify"] as const) {
    it(`${command}: is erased before the answer is printed`, async () => {
      const args = {
        show: ["show", "--config", world.targetFile(name)],
        versions: ["versions", "--config", world.targetFile(name)],
        list: ["list", "--config", world.targetFile(name)],
        doctor: ["doctor", "--config", world.targetFile(name)],
        plan: ["plan", "--config", world.targetFile(name), "--cert", cert],
        verify: ["verify", "--config", world.targetFile(name), "--cert", cert],
      }[command]
      const r = await onTerminal(args, "", world.env, true)
      expect(r.code, JSON.stringify(r.screen)).toBe(0)
      const notes = afterEachNote(r.screen)
      // The command showed progress (else there would be nothing to erase, and nothing to test).
      expect(notes.length, JSON.stringify(r.screen)).toBeGreaterThan(0)
      // After each note: another note, or the erase (carriage return, erase line); nothing is
      // written after the note's text on its line.
      for (const { note, next } of notes)
        expect(next.startsWith("\r\u001b[2K"), `after "${note}": ${JSON.stringify(next)}`).toBe(true)
    })
  }

  it("show: the answer's first line starts with the certificate's name, after the erase", async () => {
    const r = await onTerminal(["show", "--config", world.targetFile(name)], "", world.env, true)
    expect(r.code, JSON.stringify(r.screen)).toBe(0)
    expect(r.screen).toContain(`\u001b[2mreading ${name}…\u001b[22m\r\u001b[2K\u001b[1m${name}\u001b[22m`)
  })
})
