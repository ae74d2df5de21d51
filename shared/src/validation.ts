import type { Static, TSchema } from "@sinclair/typebox";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { FieldgateError } from "./errors.js";

// ajv-formats ships CommonJS with `exports.default`; under NodeNext the import is the module object.
const addFormats = (addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv }).default;

// One Ajv and one compiled function per schema for the whole process, made on first use: compiling
// costs milliseconds, and some callers build a validator per download (the fan-out benchmark
// profiled 12% of the simulator's time in Ajv compiling the same manifest schema again).
let sharedAjv: Ajv | undefined;
const compiled = new WeakMap<TSchema, ValidateFunction>();
// A second Ajv that collects every error, for files a person corrects in one go (the agent config).
let allErrorsAjv: Ajv | undefined;
const compiledAll = new WeakMap<TSchema, ValidateFunction>();

/** Compiles TypeBox schemas with Ajv once, and turns failures into `VALIDATION_FAILED` naming the field. */
export class SchemaValidator {
  /** Returns the value typed, or throws `FieldgateError(VALIDATION_FAILED)` with the failing field. */
  parse<T extends TSchema>(schema: T, value: unknown, prefix = ""): Static<T> {
    const validate = this.compile(schema);
    if (validate(value)) return value as Static<T>;
    const first = validate.errors?.[0];
    const { field, message } = describeAjvError(first, prefix);
    throw new FieldgateError("VALIDATION_FAILED", message, field);
  }

  /**
   * Every failing field of `value`, one problem per field (the first reason Ajv gives for it), in
   * document order; empty when the value fits. For input a person fixes in one go, such as a config file.
   */
  problems(schema: TSchema, value: unknown, prefix = ""): { field: string | undefined; message: string }[] {
    let validate = compiledAll.get(schema);
    if (!validate) {
      allErrorsAjv ??= createAjv(true);
      validate = allErrorsAjv.compile(schema);
      compiledAll.set(schema, validate);
    }
    if (validate(value)) return [];
    const seen = new Set<string>();
    const problems: { field: string | undefined; message: string }[] = [];
    // A union's summary ("must match a schema in anyOf") only repeats what its branches said.
    const errors = validate.errors ?? [];
    const specific = closestBranches(errors.filter((e) => e.keyword !== "anyOf" && e.keyword !== "oneOf"));
    for (const error of specific.length > 0 ? specific : errors) {
      const problem = describeAjvError(error, prefix);
      const key = problem.field ?? "";
      if (seen.has(key)) continue;
      seen.add(key);
      problems.push(problem);
    }
    return problems;
  }

  compile(schema: TSchema): ValidateFunction {
    let fn = compiled.get(schema);
    if (!fn) {
      sharedAjv ??= createAjv();
      fn = sharedAjv.compile(schema);
      compiled.set(schema, fn);
    }
    return fn;
  }
}

/**
 * Inside a union every branch reports its own errors; keep those of the branch with the fewest
 * (the one the author most likely meant), so `type: "agent"` is not told it lacks a script command.
 */
function closestBranches(errors: ErrorObject[]): ErrorObject[] {
  const branchOf = (e: ErrorObject) => /^(.*?\/(?:anyOf|oneOf))\/(\d+)\//.exec(e.schemaPath);
  const counts = new Map<string, Map<string, number>>();
  for (const e of errors) {
    const m = branchOf(e);
    if (!m) continue;
    const union = m[1] as string;
    const branches = counts.get(union) ?? new Map<string, number>();
    branches.set(m[2] as string, (branches.get(m[2] as string) ?? 0) + 1);
    counts.set(union, branches);
  }
  // A discriminator no branch accepts (`type: "nfs"`): one error listing the choices, not one branch's complaints.
  const discriminated = new Map<string, ErrorObject>();
  for (const [union, branches] of counts) {
    const consts = errors.filter((e) => e.keyword === "const" && branchOf(e)?.[1] === union);
    const at = consts[0]?.instancePath;
    if (consts.length === branches.size && consts.every((e) => e.instancePath === at)) {
      const allowed = consts.map((e) => JSON.stringify((e.params as { allowedValue?: unknown }).allowedValue));
      discriminated.set(union, {
        ...(consts[0] as ErrorObject),
        keyword: "enum",
        message: `must be one of ${allowed.join(", ")}`,
        params: {},
      });
    }
  }
  const best = new Map<string, string>();
  for (const [union, branches] of counts) {
    const [branch] = [...branches].sort((a, b) => a[1] - b[1] || Number(a[0]) - Number(b[0]))[0] as [string, number];
    best.set(union, branch);
  }
  const kept: ErrorObject[] = [];
  for (const e of errors) {
    const m = branchOf(e);
    const choice = m ? discriminated.get(m[1] as string) : undefined;
    if (choice) {
      if (!kept.includes(choice)) kept.push(choice);
    } else if (!m || best.get(m[1] as string) === m[2]) kept.push(e);
  }
  return kept;
}

function createAjv(allErrors = false): Ajv {
  // strictNumbers: a JSON `1e999` parses to Infinity, which no store or reader can represent.
  const ajv = new Ajv({
    allErrors,
    strict: false,
    strictNumbers: true,
    coerceTypes: false,
    useDefaults: false,
    verbose: true,
  });
  addFormats(ajv);
  return ajv;
}

/** Turns Ajv's `/readings/0/value` into `readings[0].value`, adding the missing or extra property. */
export function describeAjvError(
  error: ErrorObject | undefined,
  prefix = "",
): { field: string | undefined; message: string } {
  if (!error) return { field: prefix || undefined, message: "invalid value" };
  const segments = error.instancePath.split("/").slice(1).map(unescapePointer);
  const params = error.params as Record<string, unknown>;
  if (typeof params.missingProperty === "string") segments.push(params.missingProperty);
  if (typeof params.additionalProperty === "string") segments.push(params.additionalProperty);
  const path = segments.reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), "");
  const joiner = path.startsWith("[") ? "" : ".";
  const field = prefix && path ? `${prefix}${joiner}${path}` : prefix || path || undefined;
  let reason = error.message ?? "is invalid";
  if (typeof params.additionalProperty === "string") reason = "is not an allowed property";
  else if (typeof params.missingProperty === "string") reason = "is required";
  else if (error.keyword === "pattern") {
    const description = (error.parentSchema as { description?: string } | undefined)?.description;
    reason = description
      ? `must be a ${description}`
      : `does not match the expected format (${String(params.pattern)})`;
  } else if (error.keyword === "const" && params.allowedValue !== undefined)
    reason = `must be ${JSON.stringify(params.allowedValue)}`;
  return { field, message: field ? `${field} ${reason}` : `body ${reason}` };
}

function unescapePointer(seg: string): string {
  return seg.replace(/~1/g, "/").replace(/~0/g, "~");
}
