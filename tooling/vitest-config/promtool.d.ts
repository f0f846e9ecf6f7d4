/** Whether promtool runs here. */
export declare const promtoolAvailable: boolean
/** Whether a test that needs promtool must fail without it (CI=true). */
export declare const promtoolRequired: boolean
/** Whether a test that needs promtool is skipped here: promtool is missing, and not required. */
export declare const promtoolSkipped: boolean
/** The first ```yaml block after the line `heading` in the markdown file `path`. */
export declare const rulesBlock: (path: string, heading: string) => string
/** `promtool check rules`, then `promtool test rules` with `tests`: the first that fails, or status 0; throws without promtool. */
export declare const checkRules: (
  rules: string,
  tests: ReadonlyArray<unknown>,
) => { readonly status: number | null; readonly output: string }
