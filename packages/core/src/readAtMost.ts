/**
 * Input read with a bound: a file, a pipe or a device the operator names is read to its end, or
 * only until it has given more than `limit` bytes. The CLI (certificate files, standard input, the
 * target file) and the agent (its configuration) read this way, so /dev/zero, an endless pipe or a
 * huge file is refused instead of being read for ever into memory.
 */
import * as Effect from "effect/Effect"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"

export interface BoundedRead {
  /** Every byte the stream gave, or none when it gave more than the limit. */
  readonly bytes: Uint8Array
  /** Whether the stream gave more than the limit (it was then closed without being read further). */
  readonly over: boolean
}

/**
 * `stream` read to its end, or until it has given more than `limit` bytes, when the read stops and
 * the stream is closed (its scope ends: a Node readable from `NodeStream.fromReadable` is
 * destroyed). A source that says it is empty (files of /proc) is read for what it gives.
 */
export const readAtMost = <E, R>(
  stream: Stream.Stream<Uint8Array, E, R>,
  limit: number,
): Effect.Effect<BoundedRead, E, R> =>
  Effect.map(
    Stream.run(
      stream,
      Sink.fold(
        () => ({ chunks: [] as Uint8Array[], total: 0 }),
        (read) => read.total <= limit,
        (read, chunk: Uint8Array) => {
          read.chunks.push(chunk)
          read.total += chunk.byteLength
          return Effect.succeed(read)
        },
      ),
    ),
    ({ chunks, total }): BoundedRead => {
      if (total > limit) return { bytes: new Uint8Array(0), over: true }
      const bytes = new Uint8Array(total)
      let at = 0
      for (const chunk of chunks) {
        bytes.set(chunk, at)
        at += chunk.byteLength
      }
      return { bytes, over: false }
    },
  )
