import { ErrorResponse, FieldgateError } from "@fieldgate/shared";
import type { FastifyRequest } from "fastify";
import type { AccessPolicy, Principal } from "../../access/access-policy.js";
import type { Permission } from "../../access/roles.js";
import type { BulkOperations } from "../../bulk/bulk-operations.js";
import type { ApiCredentials } from "../../credentials/api-credentials.js";
import type { DeviceConfigs } from "../../device-config/device-configs.js";
import type { DeviceTypes } from "../../device-types/device-types.js";
import type { EnrollmentService } from "../../enrollment/enrollment-service.js";
import type { DeviceEventLog } from "../../events/device-events.js";
import type { FirmwareStore } from "../../firmware/firmware-store.js";
import type { GroupRow, GroupTree } from "../../groups/group-tree.js";
import type { DeviceJobs } from "../../jobs/device-jobs.js";
import type { LiveStreams } from "../../live/live-streams.js";
import type { DeviceLogs } from "../../logs/device-logs.js";
import type { DeviceRegistry, DeviceRow } from "../../registry/device-registry.js";
import type { Rollouts } from "../../rollouts/rollouts.js";
import type { TelemetryReader } from "../../telemetry/telemetry-reader.js";
import type { UserDirectory } from "../../users/user-directory.js";

/** What every route module gets: the services, the policy, and the server's own settings. */
export interface RouteContext {
  registry: DeviceRegistry;
  /** Every device's event history. */
  events: DeviceEventLog;
  bulk: BulkOperations;
  enrollment: EnrollmentService;
  credentials: ApiCredentials;
  users: UserDirectory;
  groups: GroupTree;
  types: DeviceTypes;
  policy: AccessPolicy;
  deviceConfigs: DeviceConfigs;
  deviceLogs: DeviceLogs;
  /** Stored readings, for the telemetry routes. */
  telemetry: TelemetryReader;
  firmware: FirmwareStore;
  jobs: DeviceJobs;
  rollouts: Rollouts;
  /** The open live update streams (`GET /api/v1/live`). */
  live: LiveStreams;
  version: string;
  mqttPort: () => number;
  mqttUrl: string | undefined;
}

/** The error answers operator routes document in OpenAPI. */
export const errorResponses = {
  400: ErrorResponse,
  401: ErrorResponse,
  403: ErrorResponse,
  404: ErrorResponse,
  409: ErrorResponse,
} as const;

/** The authenticated principal; the access hook guarantees it on non-public routes. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new FieldgateError("AUTH_REQUIRED");
  return request.principal;
}

export function deviceOf(request: FastifyRequest): DeviceRow {
  if (!request.device) throw new Error("route has no device scope");
  return request.device;
}

/**
 * The group a create request writes into: the checked `target` body field, or else the caller's
 * own scope (a credential scoped to a group creates there by default).
 */
export async function targetGroupOf(
  ctx: RouteContext,
  request: FastifyRequest,
  permission: Permission,
): Promise<GroupRow> {
  if (request.targetGroup) return request.targetGroup;
  const principal = principalOf(request);
  const [scope] = ctx.policy.scopes(principal, permission);
  if (!scope) throw new FieldgateError("FORBIDDEN", `this credential lacks ${permission} everywhere`);
  const id = Number(scope.split("/").filter(Boolean).pop());
  return ctx.groups.get(principal.orgId, id);
}

export async function groupRef(
  ctx: RouteContext,
  orgId: number,
  path: string,
): Promise<{ id: number; fullName: string }> {
  const id = Number(path.split("/").filter(Boolean).pop());
  return { id, fullName: await ctx.groups.fullName(orgId, path) };
}

export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
