import {
  CreateGroupBody,
  DeleteGroupQuery,
  EditGroupBody,
  Group,
  IdParams,
  ListGroupsQuery,
  MoveGroupBody,
} from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { errorResponses, principalOf, type RouteContext, targetGroupOf } from "./route-context.js";

const errors = errorResponses;

/** The group tree: create, list, show, edit, move, delete. */
export function registerGroupRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { groups } = ctx;

  app.post<{ Body: CreateGroupBody }>(
    "/api/v1/groups",
    {
      schema: {
        tags: ["groups"],
        summary: "Create a group under a parent (default: your own group)",

        body: CreateGroupBody,
        response: { 201: Group, ...errors },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const parent = await targetGroupOf(ctx, request, "groups:write");
      const { name, description, timezone } = request.body;
      const created = await groups.create(principal.orgId, parent.id, { name, description, timezone });
      return reply.status(201).send(await groups.view(principal.orgId, created.id));
    },
  );

  app.get<{ Querystring: { name?: string } }>(
    "/api/v1/groups",
    {
      schema: {
        tags: ["groups"],
        summary: "Groups you can read, in tree order; ?name= resolves a name path",

        querystring: ListGroupsQuery,
        response: { 200: Type.Object({ items: Type.Array(Group) }), ...errors },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const items = await groups.list(principal.orgId, ctx.policy.scopes(principal, "groups:read"));
      if (request.query.name === undefined) return { items };
      const wanted = request.query.name.replace(/^\/+|\/+$/g, "");
      return {
        items: items.filter((g) => g.fullName === wanted || g.fullName.split("/").slice(1).join("/") === wanted),
      };
    },
  );

  app.get<{ Params: { id: number } }>(
    "/api/v1/groups/:id",
    { schema: { tags: ["groups"], params: IdParams, response: { 200: Group, ...errors } } },
    async (request) => groups.view(principalOf(request).orgId, request.params.id),
  );

  app.patch<{ Params: { id: number }; Body: EditGroupBody }>(
    "/api/v1/groups/:id",
    {
      schema: {
        tags: ["groups"],

        params: IdParams,
        body: EditGroupBody,
        response: { 200: Group, ...errors },
      },
    },
    async (request) => {
      const orgId = principalOf(request).orgId;
      await groups.edit(orgId, request.params.id, request.body);
      return groups.view(orgId, request.params.id);
    },
  );

  app.post<{ Params: { id: number }; Body: MoveGroupBody }>(
    "/api/v1/groups/:id/move",
    {
      schema: {
        tags: ["groups"],
        summary: "Move a group and its subtree under another parent",

        params: IdParams,
        body: MoveGroupBody,
        response: { 200: Group, ...errors },
      },
    },
    async (request) => {
      const orgId = principalOf(request).orgId;
      const parent = await targetGroupOf(ctx, request, "groups:write");
      await groups.move(orgId, request.params.id, parent.id);
      return groups.view(orgId, request.params.id);
    },
  );

  app.delete<{ Params: { id: number }; Querystring: { recursive?: boolean } }>(
    "/api/v1/groups/:id",
    {
      schema: {
        tags: ["groups"],
        summary: "Delete a group; refused while it holds devices or sub-groups unless ?recursive=true",

        params: IdParams,
        querystring: DeleteGroupQuery,
        response: { 200: Type.Object({ groups: Type.Integer(), devices: Type.Integer() }), ...errors },
      },
    },
    async (request) => {
      const deleted = await groups.delete(
        principalOf(request).orgId,
        request.params.id,
        request.query.recursive === true,
      );
      for (const uuid of deleted.devices) ctx.registry.notifyRevoked(uuid, "group deleted");
      return { groups: deleted.groups, devices: deleted.devices.length };
    },
  );
}
