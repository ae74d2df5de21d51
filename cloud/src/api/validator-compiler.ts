import { Ajv } from "ajv";
import addFormatsModule from "ajv-formats";
import type { FastifySchemaCompiler } from "fastify";

const addFormats = (addFormatsModule as unknown as { default: (ajv: Ajv) => Ajv }).default;

/**
 * Bodies are validated strictly (no type coercion, unknown properties refused, so PATCH cannot
 * smuggle a uuid); query strings and params are text on the wire, so they are coerced.
 */
export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  // strictNumbers: a body's `1e999` parses to Infinity; refuse it rather than store what no reader can show.
  const common = {
    allErrors: false,
    strict: false,
    strictNumbers: true,
    verbose: true,
    removeAdditional: false,
  } as const;
  const strict = addFormats(new Ajv({ ...common, coerceTypes: false, useDefaults: false }));
  const coercing = addFormats(new Ajv({ ...common, coerceTypes: "array", useDefaults: true }));
  return ({ schema, httpPart }) => {
    const ajv = httpPart === "body" ? strict : coercing;
    return ajv.compile(schema as object);
  };
}
