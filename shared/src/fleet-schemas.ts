/**
 * API bodies of fleet management: groups, device types, API credentials, users and sessions.
 */
import { type Static, Type } from "@sinclair/typebox";
import { GroupRef } from "./schemas.js";

const Iso = Type.String({ format: "date-time" });
const GroupName = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: "^[^/]+$",
  description: "group name (no slashes)",
});
export const RoleName = Type.Union(
  ["viewer", "device-manager", "firmware-manager", "admin"].map((r) => Type.Literal(r)),
  { description: "viewer, device-manager, firmware-manager or admin" },
);
const Timezone = Type.String({ minLength: 1, maxLength: 64, description: "IANA time zone, like Europe/Berlin" });
export const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });
export const CredentialIdParams = Type.Object(
  { id: Type.String({ pattern: "^fgc_[0-9a-f]{16}$", description: "credential id" }) },
  { additionalProperties: false },
);

export const Group = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  fullName: Type.String({ description: "names from the root, like default/plant-a/line-1" }),
  description: Type.String(),
  timezone: Type.String(),
  parentId: Type.Union([Type.Integer(), Type.Null()]),
  createdAt: Iso,
  devices: Type.Integer(),
  subgroups: Type.Integer(),
});
export type Group = Static<typeof Group>;

export const CreateGroupBody = Type.Object(
  {
    name: GroupName,
    parent: Type.Optional(GroupRef),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    timezone: Type.Optional(Timezone),
  },
  { additionalProperties: false },
);
export type CreateGroupBody = Static<typeof CreateGroupBody>;

export const EditGroupBody = Type.Object(
  {
    name: Type.Optional(GroupName),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    timezone: Type.Optional(Timezone),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type EditGroupBody = Static<typeof EditGroupBody>;

export const MoveGroupBody = Type.Object({ parent: GroupRef }, { additionalProperties: false });
export type MoveGroupBody = Static<typeof MoveGroupBody>;

export const DeleteGroupQuery = Type.Object(
  { recursive: Type.Optional(Type.Boolean({ default: false })) },
  { additionalProperties: false },
);

export const ListGroupsQuery = Type.Object(
  { name: Type.Optional(Type.String({ maxLength: 512 })) },
  { additionalProperties: false },
);

const TypeName = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: "^[A-Za-z0-9_.:-]+$",
  description: "letters, digits, _ . : -",
});
const Keepalive = Type.Integer({
  minimum: 1,
  maximum: 525_600,
  description: "minutes without a message before KEEPALIVE_MISSED",
});

export const DeviceType = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  description: Type.String(),
  group: Type.Object({ id: Type.Integer(), fullName: Type.String() }),
  keepaliveMinutes: Type.Union([Type.Integer(), Type.Null()]),
  firmwareCompat: Type.String(),
  defaultLinks: Type.Unknown(),
  healthThresholds: Type.Unknown(),
  createdAt: Iso,
  devices: Type.Integer(),
});
export type DeviceType = Static<typeof DeviceType>;

export const CreateDeviceTypeBody = Type.Object(
  {
    name: TypeName,
    group: Type.Optional(GroupRef),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    keepaliveMinutes: Type.Optional(Keepalive),
    firmwareCompat: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    defaultLinks: Type.Optional(Type.Array(Type.Object({}, { additionalProperties: true }), { maxItems: 64 })),
    healthThresholds: Type.Optional(Type.Record(Type.String(), Type.Number())),
  },
  { additionalProperties: false },
);
export type CreateDeviceTypeBody = Static<typeof CreateDeviceTypeBody>;

export const EditDeviceTypeBody = Type.Object(
  {
    name: Type.Optional(TypeName),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    keepaliveMinutes: Type.Optional(Type.Union([Keepalive, Type.Null()])),
    firmwareCompat: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    defaultLinks: Type.Optional(
      Type.Union([Type.Array(Type.Object({}, { additionalProperties: true }), { maxItems: 64 }), Type.Null()]),
    ),
    healthThresholds: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Number()), Type.Null()])),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type EditDeviceTypeBody = Static<typeof EditDeviceTypeBody>;

export const Credential = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: Type.String(),
  group: Type.Object({ id: Type.Integer(), fullName: Type.String() }),
  createdAt: Iso,
  lastUsedAt: Type.Union([Iso, Type.Null()]),
});
export type Credential = Static<typeof Credential>;

export const CredentialWithSecret = Type.Object({
  credential: Credential,
  secret: Type.String({ description: "shown once; stored only as a hash" }),
});
export type CredentialWithSecret = Static<typeof CredentialWithSecret>;

export const CreateCredentialBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 128 }), group: Type.Optional(GroupRef), role: RoleName },
  { additionalProperties: false },
);
export type CreateCredentialBody = Static<typeof CreateCredentialBody>;

const RoleBinding = Type.Object({ group: GroupRef, role: RoleName }, { additionalProperties: false });
const Email = Type.String({ format: "email", maxLength: 254 });
const Password = Type.String({ minLength: 12, maxLength: 1024, description: "at least 12 characters" });

export const User = Type.Object({
  id: Type.Integer(),
  email: Type.String(),
  name: Type.String(),
  roles: Type.Array(
    Type.Object({ group: Type.Object({ id: Type.Integer(), fullName: Type.String() }), role: Type.String() }),
  ),
  createdAt: Iso,
  lastLoginAt: Type.Union([Iso, Type.Null()]),
});
export type User = Static<typeof User>;

export const CreateUserBody = Type.Object(
  {
    email: Email,
    name: Type.Optional(Type.String({ maxLength: 128 })),
    password: Password,
    roles: Type.Array(RoleBinding, { maxItems: 64 }),
  },
  { additionalProperties: false },
);
export type CreateUserBody = Static<typeof CreateUserBody>;

export const EditUserBody = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 128 })),
    password: Type.Optional(Password),
    roles: Type.Optional(Type.Array(RoleBinding, { maxItems: 64 })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type EditUserBody = Static<typeof EditUserBody>;

export const LoginBody = Type.Object(
  {
    email: Email,
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    session: Type.Optional(
      Type.Union([Type.Literal("token"), Type.Literal("cookie")], {
        description:
          "token (default): the session token in the answer, for Authorization: Bearer; cookie: an HttpOnly, Secure, SameSite=Strict cookie and a CSRF token to send as X-CSRF-Token (the web console)",
      }),
    ),
  },
  { additionalProperties: false },
);
export type LoginBody = Static<typeof LoginBody>;

export const LoginResponse = Type.Object({
  token: Type.Optional(Type.String({ description: "session token; send as Authorization: Bearer <token>" })),
  csrfToken: Type.Optional(
    Type.String({ description: "cookie sessions: send as X-CSRF-Token on every POST, PUT, PATCH and DELETE" }),
  ),
  expiresAt: Iso,
  user: User,
});

export const WhoAmI = Type.Object({
  kind: Type.String(),
  id: Type.String(),
  organization: Type.String(),
  grants: Type.Array(
    Type.Object({
      group: Type.Object({ id: Type.Integer(), fullName: Type.String() }),
      role: Type.String(),
      permissions: Type.Array(Type.String(), { description: "what the role allows on the group and below" }),
    }),
  ),
  user: Type.Optional(Type.Object({ email: Type.String(), name: Type.String() })),
  csrfToken: Type.Optional(
    Type.String({ description: "cookie sessions: the X-CSRF-Token to send on state-changing requests" }),
  ),
});
export type WhoAmI = Static<typeof WhoAmI>;
