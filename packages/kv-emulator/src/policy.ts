/**
 * Certificate policies on the wire (snake_case, as Key Vault and the SDK's
 * serializer write them), read from untrusted JSON and kept per certificate.
 */
import { KvError } from "./errors.js"

export interface KeyPropsWire {
  readonly exportable?: boolean | undefined
  readonly kty?: string | undefined
  readonly key_size?: number | undefined
  readonly reuse_key?: boolean | undefined
  readonly crv?: string | undefined
}
export interface SansWire {
  readonly emails?: ReadonlyArray<string> | undefined
  readonly dns_names?: ReadonlyArray<string> | undefined
  readonly upns?: ReadonlyArray<string> | undefined
  readonly uris?: ReadonlyArray<string> | undefined
  readonly ipAddresses?: ReadonlyArray<string> | undefined
}
export interface X509PropsWire {
  readonly subject?: string | undefined
  readonly sans?: SansWire | undefined
  readonly ekus?: ReadonlyArray<string> | undefined
  readonly key_usage?: ReadonlyArray<string> | undefined
  readonly validity_months?: number | undefined
}
export interface LifetimeActionWire {
  readonly trigger?:
    | { readonly lifetime_percentage?: number | undefined; readonly days_before_expiry?: number | undefined }
    | undefined
  readonly action?: { readonly action_type?: string | undefined } | undefined
}
export interface PolicyWire {
  readonly key_props?: KeyPropsWire | undefined
  readonly secret_props?: { readonly contentType?: string | undefined } | undefined
  readonly x509_props?: X509PropsWire | undefined
  readonly lifetime_actions?: ReadonlyArray<LifetimeActionWire> | undefined
  readonly issuer?:
    | {
        readonly name?: string | undefined
        readonly cty?: string | undefined
        readonly cert_transparency?: boolean | undefined
      }
    | undefined
  readonly attributes?:
    | {
        readonly enabled?: boolean | undefined
        readonly created?: number | undefined
        readonly updated?: number | undefined
      }
    | undefined
}

type Rec = Record<string, unknown>
const isRec = (v: unknown): v is Rec => typeof v === "object" && v !== null && !Array.isArray(v)

const invalid = (prop: string) => KvError.badParameter(`Property ${prop} has invalid value`)

const optBool = (o: Rec, k: string, path: string): boolean | undefined => {
  const v = o[k]
  if (v === undefined || v === null) return undefined
  if (typeof v !== "boolean") throw invalid(`${path}.${k}`)
  return v
}
const optNum = (o: Rec, k: string, path: string): number | undefined => {
  const v = o[k]
  if (v === undefined || v === null) return undefined
  if (typeof v !== "number" || !Number.isFinite(v)) throw invalid(`${path}.${k}`)
  return v
}
const optStr = (o: Rec, k: string, path: string): string | undefined => {
  const v = o[k]
  if (v === undefined || v === null) return undefined
  if (typeof v !== "string") throw invalid(`${path}.${k}`)
  return v
}
const optStrs = (o: Rec, k: string, path: string): ReadonlyArray<string> | undefined => {
  const v = o[k]
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) throw invalid(`${path}.${k}`)
  return v as string[]
}
const optRec = (o: Rec, k: string, path: string): Rec | undefined => {
  const v = o[k]
  if (v === undefined || v === null) return undefined
  if (!isRec(v)) throw invalid(`${path}.${k}`)
  return v
}

/** Drops undefined fields so JSON and exactOptionalPropertyTypes agree. */
const clean = <T extends object>(o: T): T => {
  const out: Rec = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return out as T
}

const KTYS = ["RSA", "RSA-HSM", "EC", "EC-HSM"]
const CONTENT_TYPES = ["application/x-pkcs12", "application/x-pem-file"]
const ACTIONS = ["EmailContacts", "AutoRenew"]

export const parsePolicy = (v: unknown): PolicyWire => {
  if (!isRec(v)) throw invalid("policy")
  const kp = optRec(v, "key_props", "policy")
  const sp = optRec(v, "secret_props", "policy")
  const xp = optRec(v, "x509_props", "policy")
  const is = optRec(v, "issuer", "policy")
  const at = optRec(v, "attributes", "policy")
  const la = v.lifetime_actions
  let keyProps: KeyPropsWire | undefined
  if (kp) {
    const kty = optStr(kp, "kty", "key_props")
    if (kty !== undefined && !KTYS.includes(kty)) throw invalid("key_props.kty")
    keyProps = clean({
      exportable: optBool(kp, "exportable", "key_props"),
      kty,
      key_size: optNum(kp, "key_size", "key_props"),
      reuse_key: optBool(kp, "reuse_key", "key_props"),
      crv: optStr(kp, "crv", "key_props"),
    })
  }
  let secretProps: { contentType?: string | undefined } | undefined
  if (sp) {
    const ct = optStr(sp, "contentType", "secret_props")
    if (ct !== undefined && !CONTENT_TYPES.includes(ct)) throw invalid("secret_props.contentType")
    secretProps = clean({ contentType: ct })
  }
  let x509Props: X509PropsWire | undefined
  if (xp) {
    const sans = optRec(xp, "sans", "x509_props")
    x509Props = clean({
      subject: optStr(xp, "subject", "x509_props"),
      sans: sans
        ? clean({
            emails: optStrs(sans, "emails", "sans"),
            dns_names: optStrs(sans, "dns_names", "sans"),
            upns: optStrs(sans, "upns", "sans"),
            uris: optStrs(sans, "uris", "sans"),
            ipAddresses: optStrs(sans, "ipAddresses", "sans"),
          })
        : undefined,
      ekus: optStrs(xp, "ekus", "x509_props"),
      key_usage: optStrs(xp, "key_usage", "x509_props"),
      validity_months: optNum(xp, "validity_months", "x509_props"),
    })
  }
  let actions: LifetimeActionWire[] | undefined
  if (la !== undefined && la !== null) {
    if (!Array.isArray(la)) throw invalid("lifetime_actions")
    actions = la.map((a: unknown) => {
      if (!isRec(a)) throw invalid("lifetime_actions")
      const trig = optRec(a, "trigger", "lifetime_actions")
      const act = optRec(a, "action", "lifetime_actions")
      const actionType = act ? optStr(act, "action_type", "action") : undefined
      if (actionType !== undefined && !ACTIONS.includes(actionType)) throw invalid("action.action_type")
      return clean({
        trigger: trig
          ? clean({
              lifetime_percentage: optNum(trig, "lifetime_percentage", "trigger"),
              days_before_expiry: optNum(trig, "days_before_expiry", "trigger"),
            })
          : undefined,
        action: act ? clean({ action_type: actionType }) : undefined,
      })
    })
  }
  return clean({
    key_props: keyProps,
    secret_props: secretProps,
    x509_props: x509Props,
    lifetime_actions: actions,
    issuer: is
      ? clean({
          name: optStr(is, "name", "issuer"),
          cty: optStr(is, "cty", "issuer"),
          cert_transparency: optBool(is, "cert_transparency", "issuer"),
        })
      : undefined,
    attributes: at ? clean({ enabled: optBool(at, "enabled", "attributes") }) : undefined,
  })
}

/** `base` with the fields `patch` sets replaced (one level deep per section, as a PATCH does). */
export const mergePolicy = (base: PolicyWire, patch: PolicyWire): PolicyWire =>
  clean({
    key_props: patch.key_props ? { ...base.key_props, ...patch.key_props } : base.key_props,
    secret_props: patch.secret_props ? { ...base.secret_props, ...patch.secret_props } : base.secret_props,
    x509_props: patch.x509_props ? { ...base.x509_props, ...patch.x509_props } : base.x509_props,
    lifetime_actions: patch.lifetime_actions ?? base.lifetime_actions,
    issuer: patch.issuer ? { ...base.issuer, ...patch.issuer } : base.issuer,
    attributes: patch.attributes ? { ...base.attributes, ...patch.attributes } : base.attributes,
  })
