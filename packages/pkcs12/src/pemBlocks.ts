/** PEM blocks as found in a text, in one linear pass (pem.ts reads them; privateKey.ts finds an encrypted key block with it). */
const BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/g
const END = /-----END ([A-Z0-9 ]+)-----/g

/** One PEM block as found: where it starts and ends, its BEGIN and END labels and its body. */
export interface FoundBlock {
  readonly index: number
  readonly endIndex: number
  readonly label: string
  readonly endLabel: string
  readonly body: string
}

/**
 * The PEM blocks of `text` in order: each from a BEGIN line to the first END line after it, then on
 * after that END (a BEGIN inside a block's body is part of the body). The same blocks as
 * `/-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g`, in one pass: that
 * expression searched to the end of the text again for every BEGIN without an END, so 1 MiB of
 * BEGIN lines took over a minute. Here a BEGIN without any END after it ends the search: no later
 * BEGIN can have one either.
 */
export function* pemBlocks(text: string): Generator<FoundBlock> {
  let from = 0
  for (;;) {
    BEGIN.lastIndex = from
    const begin = BEGIN.exec(text)
    if (begin === null) return
    const bodyStart = begin.index + begin[0].length
    END.lastIndex = bodyStart
    const end = END.exec(text)
    if (end === null) return
    const endIndex = end.index + end[0].length
    yield {
      index: begin.index,
      endIndex,
      label: begin[1] ?? "",
      endLabel: end[1] ?? "",
      body: text.slice(bodyStart, end.index),
    }
    from = endIndex
  }
}
