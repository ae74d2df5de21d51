import { CreateCredentialBody, Credential, CredentialIdParams, CredentialWithSecret } from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import type { Role } from "../../access/roles.js";
import type { CredentialRecord } from "../../credentials/api-credentials.js";
import { errorResponses, groupRef, iso, principalOf, type RouteContext, targetGroupOf } from "./route-context.js";

const errors = errorResponses;

/** API credentials scoped to a group with a role; secrets shown once. */
export function registerCredentialRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { credentials } = ctx;
  const view = async (c: CredentialRecord) => ({
    id: c.id,
    name: c.name,
    role: c.role,
    group: await groupRef(ctx, c.orgId, c.groupPath),
    createdAt: new Date(c.createdAt).toISOString(),
    lastUsedAt: iso(c.lastUsedAt),
  });

  app.post<{ Body: CreateCredentialBody }>(
    "/api/v1/credentials",
    {
      schema: {
        tags: ["credentials"],
        summary: "Create a credential scoped to a group with a role; the secret is shown once",

        body: CreateCredentialBody,
        response: { 201: CredentialWithSecret, ...errors },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const group = await targetGroupOf(ctx, request, "credentials:write");
      const role = request.body.role as Role;
      // Nobody hands out more than they hold on that group.
      ctx.policy.requireDelegable(principal, role, group.path);
      const { id, secret } = await credentials.create(principal.orgId, group.id, request.body.name, role);
      request.log.info({ credentialId: id, role, groupId: group.id }, "api credential created");
      return reply.status(201).send({ credential: await view(await credentials.get(principal.orgId, id)), secret });
    },
  );

  app.get(
    "/api/v1/credentials",
    {
      schema: {
        tags: ["credentials"],
        summary: "Credentials in your scope, with last use",

        response: { 200: Type.Object({ items: Type.Array(Credential) }), ...errors },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return {
        items: await Promise.all(
          (await credentials.list(principal.orgId, ctx.policy.scopes(principal, "credentials:read"))).map(view),
        ),
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    "/api/v1/credentials/:id",
    {
      schema: {
        tags: ["credentials"],

        params: CredentialIdParams,
        response: { 200: Credential, ...errors },
      },
    },
    async (request) => view(await credentials.get(principalOf(request).orgId, request.params.id)),
  );

  app.post<{ Params: { id: string } }>(
    "/api/v1/credentials/:id/regenerate",
    {
      schema: {
        tags: ["credentials"],
        summary: "A new secret; the old one stops working at once",

        params: CredentialIdParams,
        response: { 200: CredentialWithSecret, ...errors },
      },
    },
    async (request) => {
      const orgId = principalOf(request).orgId;
      const { secret } = await credentials.regenerate(orgId, request.params.id);
      request.log.info({ credentialId: request.params.id }, "api credential regenerated");
      // Live streams opened with the old secret end now.
      await ctx.live.recheck();
      return { credential: await view(await credentials.get(orgId, request.params.id)), secret };
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/api/v1/credentials/:id",
    {
      schema: {
        tags: ["credentials"],

        params: CredentialIdParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      await credentials.delete(principalOf(request).orgId, request.params.id);
      await ctx.live.recheck();
      return reply.status(204).send();
    },
  );
}
