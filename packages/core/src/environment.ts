/**
 * An environment variable by a name the user gave (`pfx_password_env`, `--key-passphrase-env`):
 * only the environment's own variables. `process.env.constructor` (and `toString`, `__proto__`, any
 * name Object.prototype has) answers Object's member, not "not set": a password read from it was a
 * function, and a deployment naming such a variable failed in silence.
 */
export const environmentVariable = (
  name: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string | undefined => (Object.hasOwn(env, name) ? env[name] : undefined)
