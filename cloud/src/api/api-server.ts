import type { AddressInfo } from "node:net";
import swagger from "@fastify/swagger";
import {
  CreateDeviceBody,
  Device,
  DeviceEventPage,
  DeviceList,
  DeviceWithToken,
  EnrollRequest,
  EnrollResponse,
  ErrorResponse,
  FieldgateError,
  ListDevicesQuery,
  PatchDeviceBody,
  TelemetryPage,
  TelemetryQuery,
  Uuid,
} from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { ApiCredentials, Principal } from "../credentials/api-credentials.js";
import type { EnrollmentService } from "../enrollment/enrollment-service.js";
import type { DeviceRegistry, OpenedWindow } from "../registry/device-registry.js";
import { handleApiError } from "./error-handler.js";
import { authenticateOperator, requireWrite } from "./operator-auth.js";
import { createValidatorCompiler } from "./validator-compiler.js";

export interface ApiServerOptions {
  host: string;
  port: number;
  tls: { key: string; cert: string };
  /** Port of the MQTT listener, for the URL handed to enrolling devices. */
  mqttPort: () => number;
  /** Fixed MQTT URL for devices, when the broker is reached under another name than the API. */
  mqttUrl?: string;
  version: string;
}

export interface ApiServices {
  registry: DeviceRegistry;
  enrollment: EnrollmentService;
  credentials: ApiCredentials;
}

const UuidParams = Type.Object({ uuid: Uuid }, { additionalProperties: false });
const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse };
const basicAuth = [{ basicAuth: [] }];

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** The HTTPS API under /api/v1: operator routes, device enrollment, health and OpenAPI. */
export class ApiServer {
  private app: FastifyInstance | undefined;

  constructor(
    private readonly options: ApiServerOptions,
    private readonly services: ApiServices,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<number> {
    // Typed as a plain instance: the HTTPS server generic adds nothing the routes use.
    const app = Fastify({
      https: { key: this.options.tls.key, cert: this.options.tls.cert, minVersion: "TLSv1.2" },
      loggerInstance: this.logger as FastifyBaseLogger,
      bodyLimit: 256 * 1024,
      return503OnClosing: true,
    }) as unknown as FastifyInstance;
    this.app = app;
    app.setValidatorCompiler(createValidatorCompiler());
    app.setErrorHandler(handleApiError);
    app.setNotFoundHandler((request, reply) => {
      void reply
        .status(404)
        .send({ error: { code: "NOT_FOUND", message: `no route ${request.method} ${request.url}` } });
    });
    await app.register(swagger, {
      openapi: {
        info: { title: "fieldgate cloud API", version: this.options.version },
        components: {
          securitySchemes: {
            basicAuth: { type: "http", scheme: "basic", description: "credentialId:secret" },
          },
        },
      },
    });
    this.routes(app);
    await app.listen({ host: this.options.host, port: this.options.port });
    return (app.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    await this.app?.close();
  }

  private routes(app: FastifyInstance): void {
    const { registry, enrollment, credentials } = this.services;
    const operator = (request: FastifyRequest): Principal => {
      const principal = authenticateOperator(request, credentials);
      request.principal = principal;
      return principal;
    };
    const withToken = (device: Device, window: OpenedWindow) => ({
      device,
      enrollmentToken: window.token,
      windowExpiresAt: new Date(window.expiresAt).toISOString(),
    });

    app.get(
      "/api/v1/health",
      {
        schema: {
          tags: ["service"],
          response: { 200: Type.Object({ status: Type.String(), version: Type.String() }) },
        },
      },
      async () => ({
        status: "ok",
        version: this.options.version,
      }),
    );

    app.get("/api/v1/openapi.json", { schema: { hide: true } }, async () => app.swagger());

    app.post<{ Body: EnrollRequest }>(
      "/api/v1/enroll",
      {
        schema: {
          tags: ["devices"],
          summary: "Enroll a device inside its window: CSR in, certificate out",
          body: EnrollRequest,
          response: { 200: EnrollResponse, ...errors },
        },
      },
      async (request) => {
        const host = request.hostname.replace(/^\[|\]$/g, "");
        const mqttHost = host.includes(":") ? `[${host}]` : host;
        const result = await enrollment.enroll(request.body, {
          mqttUrl: this.options.mqttUrl ?? `mqtts://${mqttHost}:${this.options.mqttPort()}`,
          apiUrl: `https://${request.host}`,
        });
        request.log.info({ uuid: result.uuid, serial: result.serial, method: request.body.method }, "device enrolled");
        return result;
      },
    );

    app.post<{ Body: CreateDeviceBody }>(
      "/api/v1/devices",
      {
        schema: {
          tags: ["devices"],
          summary: "Register a device and open its first enrollment window",
          security: basicAuth,
          body: CreateDeviceBody,
          response: { 201: DeviceWithToken, ...errors },
        },
      },
      async (request, reply) => {
        const principal = operator(request);
        requireWrite(principal);
        const { device, window } = registry.create(principal.orgId, request.body);
        return reply.status(201).send(withToken(device, window));
      },
    );

    app.get<{ Querystring: ListDevicesQuery }>(
      "/api/v1/devices",
      {
        schema: {
          tags: ["devices"],
          security: basicAuth,
          querystring: ListDevicesQuery,
          response: { 200: DeviceList, ...errors },
        },
      },
      async (request) => {
        const principal = operator(request);
        const limit = request.query.limit ?? 100;
        const offset = request.query.offset ?? 0;
        const { items, total } = registry.list(principal.orgId, request.query.q, limit, offset);
        return { items, total, limit, offset };
      },
    );

    app.get<{ Params: { uuid: string } }>(
      "/api/v1/devices/:uuid",
      { schema: { tags: ["devices"], security: basicAuth, params: UuidParams, response: { 200: Device, ...errors } } },
      async (request) => registry.get(operator(request).orgId, request.params.uuid),
    );

    app.patch<{ Params: { uuid: string }; Body: PatchDeviceBody }>(
      "/api/v1/devices/:uuid",
      {
        schema: {
          tags: ["devices"],
          summary: "Edit a device; the uuid cannot change",
          security: basicAuth,
          params: UuidParams,
          body: PatchDeviceBody,
          response: { 200: Device, ...errors },
        },
      },
      async (request) => {
        const principal = operator(request);
        requireWrite(principal);
        return registry.patch(principal.orgId, request.params.uuid, request.body);
      },
    );

    app.delete<{ Params: { uuid: string } }>(
      "/api/v1/devices/:uuid",
      {
        schema: {
          tags: ["devices"],
          security: basicAuth,
          params: UuidParams,
          response: { 204: Type.Null(), ...errors },
        },
      },
      async (request, reply) => {
        const principal = operator(request);
        requireWrite(principal);
        registry.delete(principal.orgId, request.params.uuid);
        return reply.status(204).send();
      },
    );

    app.post<{ Params: { uuid: string } }>(
      "/api/v1/devices/:uuid/reset-token",
      {
        schema: {
          tags: ["devices"],
          summary: "Revoke the device's certificate and open a new enrollment window",
          security: basicAuth,
          params: UuidParams,
          response: { 200: DeviceWithToken, ...errors },
        },
      },
      async (request) => {
        const principal = operator(request);
        requireWrite(principal);
        const { device, window } = registry.resetToken(principal.orgId, request.params.uuid);
        request.log.info({ uuid: device.uuid }, "token reset; certificates revoked");
        return withToken(device, window);
      },
    );

    app.get<{ Params: { uuid: string }; Querystring: TelemetryQuery }>(
      "/api/v1/devices/:uuid/telemetry",
      {
        schema: {
          tags: ["devices"],
          security: basicAuth,
          params: UuidParams,
          querystring: TelemetryQuery,
          response: { 200: TelemetryPage, ...errors },
        },
      },
      async (request) => {
        const { from, to } = request.query;
        if (from && to && Date.parse(from) > Date.parse(to)) {
          throw new FieldgateError("VALIDATION_FAILED", "from must not be after to", "from");
        }
        return registry.telemetry(operator(request).orgId, request.params.uuid, request.query);
      },
    );

    app.get<{ Params: { uuid: string }; Querystring: { limit?: number } }>(
      "/api/v1/devices/:uuid/events",
      {
        schema: {
          tags: ["devices"],
          security: basicAuth,
          params: UuidParams,
          querystring: Type.Object(
            { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 100 })) },
            { additionalProperties: false },
          ),
          response: { 200: DeviceEventPage, ...errors },
        },
      },
      async (request) => registry.events(operator(request).orgId, request.params.uuid, request.query.limit ?? 100),
    );

    const Organization = Type.Object({ name: Type.String(), uuidOnlyEnrollment: Type.Boolean() });
    app.get(
      "/api/v1/organization",
      { schema: { tags: ["organization"], security: basicAuth, response: { 200: Organization, ...errors } } },
      async (request) => registry.organization(operator(request).orgId),
    );
    app.patch<{ Body: { uuidOnlyEnrollment: boolean } }>(
      "/api/v1/organization",
      {
        schema: {
          tags: ["organization"],
          summary: "Organization settings; uuid-only enrollment is off by default and weaker",
          security: basicAuth,
          body: Type.Object({ uuidOnlyEnrollment: Type.Boolean() }, { additionalProperties: false }),
          response: { 200: Organization, ...errors },
        },
      },
      async (request) => {
        const principal = operator(request);
        requireWrite(principal);
        registry.setUuidOnlyEnrollment(principal.orgId, request.body.uuidOnlyEnrollment);
        return registry.organization(principal.orgId);
      },
    );
  }
}
