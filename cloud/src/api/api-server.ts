import type { AddressInfo } from "node:net";
import type tls from "node:tls";
import cookie from "@fastify/cookie";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { type ConsoleSite, defaultConsoleDir, registerConsoleSite } from "../console/console-site.js";
import { PendingConnections, type PendingLimits } from "../listeners/pending-connections.js";
import { serverTlsPolicy } from "../listeners/tls-policy.js";
import { type AccessDeps, installAccessControl } from "./access-hook.js";
import { AuthThrottle, type AuthThrottleLimits, installAuthThrottle } from "./auth-throttle.js";
import { handleApiError } from "./error-handler.js";
import { installOpenApiContract, SECURITY_SCHEMES } from "./openapi-contract.js";
import { registerBulkRoutes } from "./routes/bulk-routes.js";
import { registerCredentialRoutes } from "./routes/credential-routes.js";
import { registerDeviceConfigRoutes } from "./routes/device-config-routes.js";
import { registerDeviceExportRoutes } from "./routes/device-export-routes.js";
import { registerDeviceJobRoutes } from "./routes/device-job-routes.js";
import { registerDeviceLogRoutes } from "./routes/device-log-routes.js";
import { registerDeviceRoutes } from "./routes/device-routes.js";
import { registerDeviceTypeRoutes } from "./routes/device-type-routes.js";
import { registerFirmwareRoutes } from "./routes/firmware-routes.js";
import { registerGroupRoutes } from "./routes/group-routes.js";
import { registerLiveRoutes } from "./routes/live-routes.js";
import { registerOrganizationRoutes } from "./routes/organization-routes.js";
import { registerOrganizationsRoutes } from "./routes/organizations-routes.js";
import { registerRolloutRoutes } from "./routes/rollout-routes.js";
import type { RouteContext } from "./routes/route-context.js";
import { registerServiceRoutes } from "./routes/service-routes.js";
import { registerUserRoutes } from "./routes/user-routes.js";
import { createValidatorCompiler } from "./validator-compiler.js";

export interface ApiServerOptions {
  host: string;
  port: number;
  tls: { key: string; cert: string; ca: string };
  limits: ApiLimits;
  /** The built web console served under `/`; default: the `@fieldgate/console` workspace's dist/. */
  consoleDir?: string;
}

/** How long a connection may take over each step, and how many may be waiting (docs/security.md, "Limits"). */
export interface ApiLimits extends PendingLimits {
  /** From accept (or the end of the previous request) to the end of the request headers. */
  headersTimeoutMs: number;
  /** From accept to the whole request, body included (firmware uploads must fit in it). */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open between requests. */
  keepAliveTimeoutMs: number;
  authThrottle: AuthThrottleLimits;
}

/** Each capability adds its routes through one of these; ROUTE_RIGHTS must name every route. */
export type RouteModule = (app: FastifyInstance, ctx: RouteContext) => void;

export const ROUTE_MODULES: readonly RouteModule[] = [
  registerServiceRoutes,
  registerOrganizationRoutes,
  registerOrganizationsRoutes,
  registerDeviceRoutes,
  registerDeviceExportRoutes,
  registerGroupRoutes,
  registerDeviceTypeRoutes,
  registerCredentialRoutes,
  registerUserRoutes,
  registerBulkRoutes,
  registerDeviceLogRoutes,
  registerDeviceConfigRoutes,
  registerFirmwareRoutes,
  registerDeviceJobRoutes,
  registerRolloutRoutes,
  registerLiveRoutes,
];

/** The HTTPS API under /api/v1, with access control from ROUTE_RIGHTS and OpenAPI. */
export class ApiServer {
  private app: FastifyInstance | undefined;

  constructor(
    private readonly options: ApiServerOptions,
    private readonly ctx: RouteContext & AccessDeps,
    private readonly logger: Logger,
    private readonly modules: readonly RouteModule[] = ROUTE_MODULES,
  ) {}

  async start(): Promise<number> {
    const { limits } = this.options;
    // Typed as a plain instance: the HTTPS server generic adds nothing the routes use.
    const app = Fastify({
      // Devices renew over mTLS on the same port; operators and enrolling devices send no certificate,
      // so one is requested, verified when present, and required only where a route says so.
      https: {
        key: this.options.tls.key,
        cert: this.options.tls.cert,
        ca: [this.options.tls.ca],
        requestCert: true,
        rejectUnauthorized: false,
        ...serverTlsPolicy(limits.handshakeTimeoutMs),
        // http.Server options: Node checks the header and request deadlines this often (30 s by default).
        headersTimeout: limits.headersTimeoutMs,
        connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
      },
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      loggerInstance: this.logger as FastifyBaseLogger,
      bodyLimit: 256 * 1024,
      return503OnClosing: true,
    }) as unknown as FastifyInstance;
    this.app = app;
    // Pending from accept until the connection's first request: its authentication is per request.
    const pending = new PendingConnections(limits, this.logger, "https");
    pending.watch(app.server as unknown as tls.Server, { timeoutMs: limits.headersTimeoutMs, awaited: "request" });
    app.addHook("onRequest", async (request) => pending.settle(request.raw.socket));
    app.setValidatorCompiler(createValidatorCompiler());
    app.setErrorHandler(handleApiError);
    let site: ConsoleSite | undefined;
    app.setNotFoundHandler((request, reply) => {
      if (site?.servePage(request, reply)) return;
      void reply
        .status(404)
        .send({ error: { code: "NOT_FOUND", message: `no route ${request.method} ${request.url}` } });
    });
    await app.register(swagger, {
      openapi: {
        // 3.1: the mutualTLS security scheme of device routes exists only from 3.1 on.
        openapi: "3.1.0",
        info: { title: "fieldgate cloud API", version: this.ctx.version },
        // The plugin's types know OpenAPI 3.0 only, which has no mutualTLS.
        components: {
          securitySchemes: SECURITY_SCHEMES as unknown as Record<string, { type: "http"; scheme: string }>,
        },
      },
    });
    await app.register(cookie);
    site = await registerConsoleSite(app, this.options.consoleDir ?? defaultConsoleDir());
    installAuthThrottle(app, new AuthThrottle(limits.authThrottle));
    installAccessControl(app, this.ctx);
    installOpenApiContract(app);
    // Live streams never end by themselves: closing ends them, or close would wait on them forever.
    app.addHook("preClose", async () => this.ctx.live.closeAll());
    for (const register of this.modules) register(app, this.ctx);
    await app.listen({ host: this.options.host, port: this.options.port });
    return (app.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    await this.app?.close();
  }
}
