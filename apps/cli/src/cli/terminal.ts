/**
 * Where output goes. stdout carries the result (and nothing but JSON with
 * `--json`); stderr carries progress and errors. Colours and the progress line
 * appear only on a TTY, and never with `--json`, when NO_COLOR is set or TERM=dumb.
 */
import * as Effect from "effect/Effect"

const env = process.env

/**
 * Whether the command line asks for `--json`: every command's help promises it means "no colours,
 * no progress", on stderr as well (a terminal's stderr beside `--json > out.json` got both).
 */
const output = { json: false }

/** Turn colours and the progress line off for the rest of the run (`--json`). */
export const jsonOutput = (): void => {
  output.json = true
}

/** Whether colours may be written to `stream`: a terminal, without `--json`, NO_COLOR, TERM=dumb or FORCE_COLOR=0. */
export const colourWanted = (stream: NodeJS.WriteStream): boolean =>
  !output.json &&
  stream.isTTY === true &&
  env.NO_COLOR === undefined &&
  env.TERM !== "dumb" &&
  env.FORCE_COLOR !== "0"

export interface Style {
  readonly bold: (s: string) => string
  readonly dim: (s: string) => string
  readonly red: (s: string) => string
  readonly green: (s: string) => string
  readonly yellow: (s: string) => string
  readonly cyan: (s: string) => string
}

const sgr = (open: number, close: number) => (s: string) => `\u001b[${open}m${s}\u001b[${close}m`
const plain = (s: string) => s

const coloured: Style = {
  bold: sgr(1, 22),
  dim: sgr(2, 22),
  red: sgr(31, 39),
  green: sgr(32, 39),
  yellow: sgr(33, 39),
  cyan: sgr(36, 39),
}
const uncoloured: Style = { bold: plain, dim: plain, red: plain, green: plain, yellow: plain, cyan: plain }

/** Style for stdout. */
export const styleOut = (): Style => (colourWanted(process.stdout) ? coloured : uncoloured)
/** Style for stderr. */
export const styleErr = (): Style => (colourWanted(process.stderr) ? coloured : uncoloured)

/** Whether the progress line holds a note (one not yet erased). */
let progressShown = false

/** Erase the progress line's note, if one is shown (synchronously: before the next write). */
const eraseProgress = (): void => {
  if (!progressShown) return
  progressShown = false
  process.stderr.write("\r\u001b[2K")
}

/** A one-line progress note on stderr, rewritten in place; only on a TTY, and never with `--json`. */
export const progress = (text: string): Effect.Effect<void> =>
  Effect.sync(() => {
    if (output.json || process.stderr.isTTY !== true || env.TERM === "dumb") return
    progressShown = true
    const columns = process.stderr.columns
    const width = columns === undefined || columns < 20 ? 80 : columns
    process.stderr.write(`\r\u001b[2K${styleErr().dim(text.slice(0, Math.max(10, width - 1)))}`)
  })

/**
 * Erase the progress line. Every print below does it first, so a command need not: this is for
 * what is not printed here (a prompt, an exit that prints nothing).
 */
export const clearProgress: Effect.Effect<void> = Effect.sync(eraseProgress)

/**
 * Write `text` and wait until the stream has handed it to the system: the process exits right
 * after the command (runMain), and a pipe takes 64 KiB at a time, so output not yet written when
 * it exits would be cut off (a long --json document was). A failed write (a reader that went
 * away) ends the wait as well. A progress note is erased first: on a terminal, stdout and stderr
 * share the line, and the answer's first line was printed after the note's text (show, versions).
 */
const written = (stream: NodeJS.WriteStream, text: string): Effect.Effect<void> =>
  text === ""
    ? Effect.sync(eraseProgress)
    : Effect.callback<void>((resume) => {
        eraseProgress()
        stream.write(text, () => resume(Effect.void))
      })

export const printLine = (line = ""): Effect.Effect<void> => written(process.stdout, `${line}\n`)
export const printLines = (lines: ReadonlyArray<string>): Effect.Effect<void> =>
  written(process.stdout, lines.length === 0 ? "" : `${lines.join("\n")}\n`)
export const printErr = (line: string): Effect.Effect<void> => written(process.stderr, `${line}\n`)

/** Print a value as the command's JSON result (pretty, one document). */
export const printJson = (value: unknown): Effect.Effect<void> =>
  Effect.andThen(
    Effect.sync(() => {
      jsonPrinted.value = true
    }),
    written(process.stdout, `${JSON.stringify(value, jsonReplacer, 2)}\n`),
  )

/** Whether the command printed its JSON document (an interruption after it adds none: one document). */
export const jsonPrinted = { value: false }

const jsonReplacer = (_key: string, value: unknown): unknown => {
  if (value instanceof Uint8Array) return undefined
  return value
}

/** Wrap a step with a progress note. */
export const step = <A, E, R>(text: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.andThen(progress(`${text}…`), effect)
