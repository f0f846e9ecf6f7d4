const day = 86_400_000

/**
 * A span of time, rounded down, in days from 2 days on, else in hours, else in minutes, else in
 * seconds ("in 0 d" or "in 0 min" says too little).
 */
export const spanText = (ms: number): string =>
  ms >= 2 * day
    ? `${Math.floor(ms / day)} d`
    : ms >= 3_600_000
      ? `${Math.floor(ms / 3_600_000)} h`
      : ms >= 60_000
        ? `${Math.floor(ms / 60_000)} min`
        : `${Math.floor(ms / 1000)} s`
