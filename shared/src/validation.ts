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

function createAjv(): Ajv {
  const ajv = new Ajv({ allErrors: false, strict: false, coerceTypes: false, useDefaults: false, verbose: true });
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
