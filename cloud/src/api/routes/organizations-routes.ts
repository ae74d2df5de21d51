import { ErrorResponse, FieldgateError } from "@fieldgate/shared";
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import type { RouteContext } from "./route-context.js";

const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 409: ErrorResponse };

const CreateOrganizationBody = Type.Object(
  {
    name: Type.String({
      pattern: "^[A-Za-z0-9_.-]{1,64}$",
      description: "1 to 64 letters, digits, _ . -; also the name of the organization's root group",
    }),
  },
  { additionalProperties: false },
);
const CreatedOrganization = Type.Object({
  organization: Type.Object({ name: Type.String() }),
  credential: Type.Object(
    { id: Type.String(), secret: Type.String() },
    { description: "the new organization's admin credential (role admin on its root group); the secret is shown once" },
  ),
});
const OrganizationList = Type.Object({
  items: Type.Array(Type.Object({ name: Type.String(), devices: Type.Integer({ minimum: 0 }) })),
});

/**
 * Tenants, for whoever runs the cloud: `host` routes, open only to the host credential
 * (host-credential.json); no tenant credential or user can create or see other organizations.
 */
export function registerOrganizationsRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{ Body: Static<typeof CreateOrganizationBody> }>(
    "/api/v1/organizations",
    {
      schema: {
        tags: ["organizations"],
        summary:
          "Create an organization with its root group and an admin credential (secret shown once); host credential only",
        body: CreateOrganizationBody,
        response: { 201: CreatedOrganization, ...errors },
      },
    },
    async (request, reply) => {
      const { name } = request.body;
      if (await ctx.registry.organizationNamed(name)) {
        throw new FieldgateError("ORGANIZATION_EXISTS", `an organization named ${name} exists`, "name");
      }
      // One transaction: no organization without its admin credential.
      const { orgId, alongside: adminCreated } = await ctx.registry.createOrganization(name, async (id, executor) =>
        ctx.credentials.create(id, (await ctx.groups.root(id, executor)).id, "admin", "admin", executor),
      );
      const admin = await adminCreated;
      request.log.info({ orgId, credentialId: admin.id }, "organization created");
      return reply.status(201).send({ organization: { name }, credential: admin });
    },
  );
  app.get(
    "/api/v1/organizations",
    {
      schema: {
        tags: ["organizations"],
        summary: "Every organization, oldest first, with its device count; host credential only",
        response: { 200: OrganizationList, ...errors },
      },
    },
    async () => ({ items: (await ctx.registry.organizations()).map((o) => ({ name: o.name, devices: o.devices })) }),
  );
}
