import { describeAjvError, type ErrorBody, FieldgateError } from "@fieldgate/shared";
import type { ErrorObject } from "ajv";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";

/** Maps every failure to `{ error: { code, message, field? } }` with the code's HTTP status. */
export function handleApiError(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): void {
  const body = toErrorBody(error, request);
  const status = body.status;
  if (status >= 500) request.log.error({ err: error }, "request failed");
  void reply.status(status).send({ error: body.error });
}

function toErrorBody(error: FastifyError | Error, request: FastifyRequest): { status: number; error: ErrorBody } {
  if (error instanceof FieldgateError) return { status: error.status, error: error.toBody() };
  const fastifyError = error as FastifyError & { validation?: ErrorObject[]; validationContext?: string };
  if (fastifyError.validation) {
    const first = fastifyError.validation[0];
    const { field, message } = describeAjvError(first);
    const fg = new FieldgateError("VALIDATION_FAILED", boundMessage(first, field) ?? message, field);
    return { status: fg.status, error: fg.toBody() };
  }
  switch (fastifyError.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return wrap(new FieldgateError("PAYLOAD_MALFORMED", "the request body is not valid JSON", "body"));
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return wrap(new FieldgateError("VALIDATION_FAILED", "the request body must be application/json", "content-type"));
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return wrap(new FieldgateError("VALIDATION_FAILED", tooLargeMessage(request), "body"));
  }
  if (typeof fastifyError.statusCode === "number" && fastifyError.statusCode < 500) {
    return wrap(new FieldgateError("VALIDATION_FAILED", fastifyError.message));
  }
  return wrap(new FieldgateError("INTERNAL"));
}

function wrap(error: FieldgateError): { status: number; error: ErrorBody } {
  return { status: error.status, error: error.toBody() };
}

/** A number out of range, with the bound in words and, for a page size, how to get the rest. */
function boundMessage(error: ErrorObject | undefined, field: string | undefined): string | undefined {
  if (!error || !field || (error.keyword !== "maximum" && error.keyword !== "minimum")) return undefined;
  const bound = (error.params as { limit?: number }).limit;
  const words = `${field} must be ${error.keyword === "maximum" ? "at most" : "at least"} ${bound}`;
  return field === "limit" && error.keyword === "maximum" ? `${words}: fetch further pages with offset` : words;
}

/** Over the body limit: the limit, and for a bulk CSV how to split it. */
function tooLargeMessage(request: FastifyRequest): string {
  const limit = request.routeOptions.bodyLimit ?? 0;
  const size = `${formatBytes(limit)} (${limit} bytes)`;
  if (request.url.startsWith("/api/v1/devices/bulk/")) {
    return `the CSV file is larger than the ${size} a bulk request takes: split it into several files (keep the header row in each) and send them one after another`;
  }
  return `the request body is larger than the ${size} this route takes`;
}

function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
