import { CreateUserBody, EditUserBody, IdParams, User } from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Role } from "../../access/roles.js";
import { errorResponses, principalOf, type RouteContext } from "./route-context.js";
import { userView } from "./service-routes.js";

const errors = errorResponses;

/** Users of the organization and their roles on groups. Managed by admins of the root group. */
export function registerUserRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { users } = ctx;
  const bindings = async (request: FastifyRequest, roles: { group: string | number; role: string }[]) => {
    const principal = principalOf(request);
    const bound: { groupId: number; role: Role }[] = [];
    for (const r of roles) {
      const group = await ctx.groups.resolve(principal.orgId, r.group);
      ctx.policy.requireDelegable(principal, r.role as Role, group.path);
      bound.push({ groupId: group.id, role: r.role as Role });
    }
    return bound;
  };

  app.post<{ Body: CreateUserBody }>(
    "/api/v1/users",
    {
      schema: { tags: ["users"], body: CreateUserBody, response: { 201: User, ...errors } },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const user = await users.create(principal.orgId, {
        ...request.body,
        roles: await bindings(request, request.body.roles),
      });
      return reply.status(201).send(await userView(ctx, user));
    },
  );

  app.get(
    "/api/v1/users",
    {
      schema: {
        tags: ["users"],

        response: { 200: Type.Object({ items: Type.Array(User) }), ...errors },
      },
    },
    async (request) => ({
      items: await Promise.all((await users.list(principalOf(request).orgId)).map((u) => userView(ctx, u))),
    }),
  );

  app.get<{ Params: { id: number } }>(
    "/api/v1/users/:id",
    { schema: { tags: ["users"], params: IdParams, response: { 200: User, ...errors } } },
    async (request) => await userView(ctx, await users.get(principalOf(request).orgId, request.params.id)),
  );

  app.patch<{ Params: { id: number }; Body: EditUserBody }>(
    "/api/v1/users/:id",
    {
      schema: {
        tags: ["users"],
        summary: "Change name, password (ends the user's sessions) or roles",

        params: IdParams,
        body: EditUserBody,
        response: { 200: User, ...errors },
      },
    },
    async (request) => {
      const { roles, ...rest } = request.body;
      const user = await users.edit(principalOf(request).orgId, request.params.id, {
        ...rest,
        ...(roles && { roles: await bindings(request, roles) }),
      });
      // A new password ends the user's sessions, new roles change what they may read: live streams follow now.
      await ctx.live.recheck();
      return await userView(ctx, user);
    },
  );

  app.delete<{ Params: { id: number } }>(
    "/api/v1/users/:id",
    {
      schema: {
        tags: ["users"],

        params: IdParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      await users.delete(principalOf(request).orgId, request.params.id);
      await ctx.live.recheck();
      return reply.status(204).send();
    },
  );
}
