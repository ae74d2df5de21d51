import { describeAjvError, type ErrorBody, FieldgateError } from "@fieldgate/shared";
import type { ErrorObject } from "ajv";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";

/** Maps every failure to `{ error: { code, message, field? } }` with the code's HTTP status. */
export function handleApiError(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): void {
  const body = toErrorBody(error);
  const status = body.status;
  if (status >= 500) request.log.error({ err: error }, "request failed");
  void reply.status(status).send({ error: body.error });
}

function toErrorBody(error: FastifyError | Error): { status: number; error: ErrorBody } {
  if (error instanceof FieldgateError) return { status: error.status, error: error.toBody() };
  const fastifyError = error as FastifyError & { validation?: ErrorObject[]; validationContext?: string };
  if (fastifyError.validation) {
    const { field, message } = describeAjvError(fastifyError.validation[0]);
    const fg = new FieldgateError("VALIDATION_FAILED", message, field);
    return { status: fg.status, error: fg.toBody() };
  }
  switch (fastifyError.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return wrap(new FieldgateError("PAYLOAD_MALFORMED", "the request body is not valid JSON", "body"));
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return wrap(new FieldgateError("VALIDATION_FAILED", "the request body must be application/json", "content-type"));
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return wrap(new FieldgateError("VALIDATION_FAILED", "the request body is too large", "body"));
  }
  if (typeof fastifyError.statusCode === "number" && fastifyError.statusCode < 500) {
    return wrap(new FieldgateError("VALIDATION_FAILED", fastifyError.message));
  }
  return wrap(new FieldgateError("INTERNAL"));
}

function wrap(error: FieldgateError): { status: number; error: ErrorBody } {
  return { status: error.status, error: error.toBody() };
}
