/** The rollouts API (issue #5): what an operator sends to start one and what the cloud shows. */
import { type Static, Type } from "@sinclair/typebox";

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

/** Exactly one target; `query` takes the device list's filters as a query string. */
export const RolloutTarget = Type.Object(
  {
    devices: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 100_000 }),
    ),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    query: Type.Optional(
      Type.String({ minLength: 1, maxLength: 2000, description: "device list filters, e.g. type=gw&status=ok" }),
    ),
    group: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1, maxLength: 512 })], {
        description: "group id or full name; sub-groups included",
      }),
    ),
  },
  { additionalProperties: false },
);
export type RolloutTarget = Static<typeof RolloutTarget>;

export const CreateRolloutBody = Type.Object(
  {
    firmware: Type.String({ minLength: 3, maxLength: 200, description: "name@version" }),
    target: RolloutTarget,
    phases: Type.Optional(Type.String({ maxLength: 200, description: "cumulative: 1%,10%,50%,100% or 5,50,500" })),
    successThreshold: Type.Optional(
      Type.String({ maxLength: 10, description: "a phase advances at this success share, e.g. 95%" }),
    ),
    failureThreshold: Type.Optional(
      Type.String({ maxLength: 10, description: "the rollout aborts at this failure share, e.g. 10%" }),
    ),
    rate: Type.Optional(
      Type.String({ maxLength: 20, description: "most installs started per unit: 100/min, 2/s, 500/h" }),
    ),
    maintenanceWindow: Type.Optional(
      Type.String({
        maxLength: 200,
        description: '"cron, duration[, time zone]", e.g. "0 2 * * *, 2h, Europe/Berlin"',
      }),
    ),
    timeout: Type.Optional(Type.String({ maxLength: 20, description: "per device job, default 60m" })),
    retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
    autoRollback: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type CreateRolloutBody = Static<typeof CreateRolloutBody>;

export const RolloutState = Type.Union(["running", "paused", "completed", "aborted"].map((s) => Type.Literal(s)));

const Counts = Type.Object({
  total: Type.Integer(),
  pending: Type.Integer(),
  inProgress: Type.Integer(),
  succeeded: Type.Integer(),
  failed: Type.Integer(),
  skipped: Type.Integer(),
  cancelled: Type.Integer(),
  rolledBack: Type.Integer({ description: "devices auto-rollback returned to their previous version" }),
});

export const RolloutView = Type.Object({
  id: Type.Integer(),
  firmware: Type.Object({ name: Type.String(), version: Type.String() }),
  state: RolloutState,
  stopReason: Nullable(Type.String()),
  stopMessage: Nullable(Type.String()),
  waitingFor: Nullable(Type.String({ description: "why no install is starting now: maintenance-window, rate" })),
  nextWindowAt: Nullable(Type.String()),
  target: RolloutTarget,
  phases: Type.Array(Type.Object({ index: Type.Integer(), mark: Type.String(), size: Type.Integer(), counts: Counts })),
  currentPhase: Type.Integer({ description: "0-based" }),
  counts: Counts,
  successThreshold: Type.String(),
  failureThreshold: Type.String(),
  rate: Nullable(Type.String()),
  maintenanceWindow: Nullable(Type.String()),
  timeout: Type.String(),
  retries: Type.Integer(),
  autoRollback: Type.Boolean(),
  createdBy: Type.String(),
  created: Type.String(),
  updated: Type.String(),
  failing: Type.Optional(
    Type.Array(
      Type.Object({
        device: Type.String(),
        phase: Type.Integer(),
        status: Type.String(),
        reason: Nullable(Type.String()),
        message: Nullable(Type.String()),
        attempts: Type.Integer(),
        rollback: Nullable(Type.String()),
      }),
    ),
  ),
});
export type RolloutView = Static<typeof RolloutView>;

export const RolloutList = Type.Object({ items: Type.Array(RolloutView) });

/** One device of a rollout, in target order, with its current job (`GET /api/v1/rollouts/{id}/devices`). */
export const RolloutDevice = Type.Object({
  device: Type.String({ description: "uuid" }),
  name: Nullable(Type.String()),
  phase: Type.Integer({ description: "0-based" }),
  state: Type.String({ description: "pending, active, succeeded, failed, skipped, cancelled" }),
  reason: Nullable(Type.String()),
  message: Nullable(Type.String()),
  attempts: Type.Integer(),
  fromVersion: Nullable(Type.String({ description: "the version the device reported at creation" })),
  rollback: Nullable(Type.String()),
  job: Type.Union([
    Type.Object({
      id: Type.String(),
      status: Type.String({ description: "CREATED until the device reports, then its JobStatus" }),
      step: Nullable(Type.String()),
      progress: Type.Union([Type.Object({ done: Type.Number(), total: Type.Number() }), Type.Null()]),
      updated: Type.String(),
    }),
    Type.Null(),
  ]),
});
export type RolloutDevice = Static<typeof RolloutDevice>;

export const RolloutDeviceList = Type.Object({
  items: Type.Array(RolloutDevice, { description: "at most 1000, in target order" }),
  total: Type.Integer({ description: "devices in the rollout" }),
});
export type RolloutDeviceList = Static<typeof RolloutDeviceList>;
