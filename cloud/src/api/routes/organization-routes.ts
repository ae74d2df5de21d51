import { ErrorResponse } from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { principalOf, type RouteContext } from "./route-context.js";

const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse };
const Organization = Type.Object({ name: Type.String(), uuidOnlyEnrollment: Type.Boolean() });

/** Organization settings; reading and writing them needs a role on the root group. */
export function registerOrganizationRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    "/api/v1/organization",
    { schema: { tags: ["organization"], response: { 200: Organization, ...errors } } },
    async (request) => ctx.registry.organization(principalOf(request).orgId),
  );
  app.patch<{ Body: { uuidOnlyEnrollment: boolean } }>(
    "/api/v1/organization",
    {
      schema: {
        tags: ["organization"],
        summary: "Organization settings; uuid-only enrollment is off by default and weaker",

        body: Type.Object({ uuidOnlyEnrollment: Type.Boolean() }, { additionalProperties: false }),
        response: { 200: Organization, ...errors },
      },
    },
    async (request) => {
      const orgId = principalOf(request).orgId;
      await ctx.registry.setUuidOnlyEnrollment(orgId, request.body.uuidOnlyEnrollment);
      return ctx.registry.organization(orgId);
    },
  );
}
